package remote

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"strconv"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// UnknownHostKeyError means the known_hosts file has no key for the host, so
// its identity cannot be checked. The connection is refused rather than
// trusting the key on first use.
type UnknownHostKeyError struct {
	Host           string // host:port as dialled
	KnownHostsFile string
	KeyType        string // type of the key the server presented
	Fingerprint    string // SHA256 fingerprint of that key
}

func (e *UnknownHostKeyError) Error() string {
	host, port := splitHostPort(e.Host)
	return fmt.Sprintf("host %s is not in %s (it presented %s key %s). "+
		"Verify that fingerprint with the server's administrator (on the server: ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub), then add it: "+
		"ssh-keyscan -p %s %s >> %s",
		e.Host, e.KnownHostsFile, e.KeyType, e.Fingerprint, port, host, e.KnownHostsFile)
}

// HostKeyChangedError means the server presented a key different from the
// one recorded for it: the server was reinstalled, or someone is
// intercepting the connection.
type HostKeyChangedError struct {
	Host           string // host:port as dialled
	KnownHostsFile string // file holding the recorded key
	Line           int    // its line in that file
	KeyType        string // type of the key the server presented
	Fingerprint    string // SHA256 fingerprint of the presented key
	Known          string // SHA256 fingerprint of the recorded key
}

func (e *HostKeyChangedError) Error() string {
	host, port := splitHostPort(e.Host)
	name := host
	if port != strconv.Itoa(DefaultSSHPort) {
		name = "[" + host + "]:" + port
	}
	return fmt.Sprintf("HOST KEY CHANGED for %s: it presented %s key %s but %s:%d records %s. "+
		"Someone may be intercepting the connection; do not deploy until this is explained. "+
		"If the server was reinstalled, remove the old line with ssh-keygen -R '%s' -f %s "+
		"and add the new key after verifying its fingerprint",
		e.Host, e.KeyType, e.Fingerprint, e.KnownHostsFile, e.Line, e.Known, name, e.KnownHostsFile)
}

func splitHostPort(hostport string) (string, string) {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return hostport, strconv.Itoa(DefaultSSHPort)
	}
	return host, port
}

// hostKeyChecker verifies server keys against one known_hosts file.
type hostKeyChecker struct {
	file string
	db   ssh.HostKeyCallback // nil when the file does not exist
}

func newHostKeyChecker(file string) (*hostKeyChecker, error) {
	cb, err := knownhosts.New(file)
	if errors.Is(err, fs.ErrNotExist) {
		return &hostKeyChecker{file: file}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read known hosts %s: %w", file, err)
	}
	return &hostKeyChecker{file: file, db: cb}, nil
}

// known returns the keys recorded for address (host:port).
func (c *hostKeyChecker) known(address string) []knownhosts.KnownKey {
	if c.db == nil {
		return nil
	}
	// Ask the database about a key it cannot hold: the mismatch error
	// lists every key it has for the address.
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil
	}
	probe, err := ssh.NewPublicKey(pub)
	if err != nil {
		return nil
	}
	var keyErr *knownhosts.KeyError
	if errors.As(c.db(address, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 22}, probe), &keyErr) {
		return keyErr.Want
	}
	return nil
}

// algorithms lists host key algorithms matching the recorded keys, so the
// server presents a key we can verify rather than its first preference.
// Nil (the library's defaults) when nothing is recorded.
func (c *hostKeyChecker) algorithms(address string) []string {
	var algos []string
	seen := map[string]bool{}
	add := func(a ...string) {
		for _, x := range a {
			if !seen[x] {
				seen[x] = true
				algos = append(algos, x)
			}
		}
	}
	for _, k := range c.known(address) {
		switch t := k.Key.Type(); t {
		case ssh.KeyAlgoRSA:
			add(ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA)
		default:
			add(t)
		}
	}
	return algos
}

// callback is the ssh.HostKeyCallback turning the library's errors into
// UnknownHostKeyError and HostKeyChangedError.
func (c *hostKeyChecker) callback(hostname string, remote net.Addr, key ssh.PublicKey) error {
	unknown := &UnknownHostKeyError{
		Host: hostname, KnownHostsFile: c.file,
		KeyType: key.Type(), Fingerprint: ssh.FingerprintSHA256(key),
	}
	if c.db == nil {
		return unknown
	}
	err := c.db(hostname, remote, key)
	var keyErr *knownhosts.KeyError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &keyErr) && len(keyErr.Want) == 0:
		return unknown
	case errors.As(err, &keyErr):
		want := keyErr.Want[0]
		// Prefer the recorded key of the same type: that is the one that changed.
		for _, k := range keyErr.Want {
			if k.Key.Type() == key.Type() {
				want = k
				break
			}
		}
		return &HostKeyChangedError{
			Host: hostname, KnownHostsFile: want.Filename, Line: want.Line,
			KeyType: key.Type(), Fingerprint: ssh.FingerprintSHA256(key),
			Known: ssh.FingerprintSHA256(want.Key),
		}
	default:
		return fmt.Errorf("check host key of %s against %s: %w", hostname, c.file, err)
	}
}

// fileExists reports whether path names an existing file.
func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
