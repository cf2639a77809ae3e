// Package security holds the attack tests of docs/security.md: one or more
// per finding, each written as an attacker with namespace rights (or a pod
// author, or a compromised app container) would try it, against the real
// binaries, a real kube-apiserver and real or faithful backends. The files
// are named by area (caps, podsec, sync, netid, hosts).
package security
