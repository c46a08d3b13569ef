// Package testenv starts real servers for tests: OpenSSH sshd instances on
// loopback addresses with generated keys, and checks for the tools other
// tests need. It is a normal package so every package's tests can use it.
package testenv

import (
	"os"
	"os/exec"
	"testing"
)

// RequireTool returns the path of the executable name. When it is missing
// the test fails under CI (env CI set), where every tool must be installed,
// and is skipped elsewhere; both say how to install it.
func RequireTool(t testing.TB, name, installHint string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	missing(t, name+" not found: "+installHint)
	return ""
}

// missing fails under CI and skips elsewhere.
func missing(t testing.TB, msg string) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// skipShort skips a test that would start a server under -short, which
// runs only what needs no sshd, nginx or Docker.
func skipShort(t testing.TB, server string) {
	t.Helper()
	if testing.Short() {
		t.Skipf("starts %s: runs without -short", server)
	}
}
