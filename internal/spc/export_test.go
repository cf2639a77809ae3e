package spc

// Test helpers shared with the external integration test package, which
// cannot be package spc because testenv imports spc indirectly.
var (
	LoadClass   = loadClass
	SeedClasses = seedClasses
)
