package spc

import (
	"strings"
	"testing"
)

func TestValidProviderName(t *testing.T) {
	tests := map[string]struct {
		name string
		want bool
	}{
		"simple":         {"akeyless", true},
		"dash and score": {"my_provider-2", true},
		"empty":          {"", false},
		"slash":          {"../x", false},
		"dot":            {"a.b", false},
		"31 characters":  {strings.Repeat("a", 31), false},
		"30 characters":  {strings.Repeat("a", 30), true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := ValidProviderName(tc.name); got != tc.want {
				t.Errorf("ValidProviderName(%q) = %v", tc.name, got)
			}
		})
	}
}
