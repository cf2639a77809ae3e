package main

import "time"

// nodeIdleTimeout drops the Vault token and leases of a pod the node shim
// has not fetched for in this long (several rotation polls).
const nodeIdleTimeout = 15 * time.Minute
