// Package e2e holds the end-to-end tests of the deploy pipeline: the example
// app deployed over a real OpenSSH sshd on loopback, checked on the "server"
// afterwards. The package has no code of its own besides these helpers.
package e2e
