// Package wire holds what the end-to-end test application reports (GET
// /state, the line `app smoke` prints), shared by the application and the
// tests that decode it.
package wire

import "time"

// Event is one fsnotify event and what reading the file then returned.
type Event struct {
	At      time.Time `json:"at"`
	Op      string    `json:"op"`
	Name    string    `json:"name"`
	Content *string   `json:"content,omitempty"`
}

// Change is a file whose content differs from the last read.
type Change struct {
	At      time.Time `json:"at"`
	Name    string    `json:"name"`
	Content string    `json:"content"`
}

// State is what GET /state returns.
type State struct {
	Dir     string            `json:"dir"`
	Started time.Time         `json:"started"`
	Initial map[string]string `json:"initial"`
	Files   map[string]string `json:"files"`
	Events  []Event           `json:"events"`
	Changes []Change          `json:"changes"`
	Env     map[string]string `json:"env"`
}

// SawEvent reports whether the watcher got an event under the file's own
// name and read want from the file then (what the seed guide's handler
// does).
func (s *State) SawEvent(name, want string) bool {
	for _, e := range s.Events {
		if e.Name == name && e.Content != nil && *e.Content == want {
			return true
		}
	}
	return false
}

// SmokeResult is the JSON line `app smoke` prints.
type SmokeResult struct {
	MarkerFromSidecar bool     `json:"markerFromSidecar"`
	MarkerFSType      string   `json:"markerFsType"`
	ProjectedAudience string   `json:"projectedAudience"`
	APIByServiceIP    string   `json:"apiByServiceIP"`
	APIByDNS          string   `json:"apiByDNS"`
	ResolvedService   string   `json:"resolvedService"`
	Errors            []string `json:"errors,omitempty"`
}
