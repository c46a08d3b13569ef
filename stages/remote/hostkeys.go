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
	"strings"

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

// UntrustedHostCertificateError means the server presented a host
// certificate signed by a CA that no @cert-authority line trusts for it,
// and its certified key is not recorded either.
type UntrustedHostCertificateError struct {
	Host           string // host:port as dialled
	KnownHostsFile string
	CAType         string // type of the signing CA's key
	CA             string // SHA256 fingerprint of the CA's key
	Fingerprint    string // SHA256 fingerprint of the certified key
}

func (e *UntrustedHostCertificateError) Error() string {
	host, port := splitHostPort(e.Host)
	pattern := host
	if port != strconv.Itoa(DefaultSSHPort) {
		pattern = "[" + host + "]:" + port
	}
	return fmt.Sprintf("host %s presented a certificate signed by %s CA %s, which %s does not trust for it (no matching @cert-authority line), "+
		"and its key %s is not recorded there either. If that CA is your organisation's, verify its fingerprint and add: "+
		"@cert-authority %s <the CA's public key> to %s",
		e.Host, e.CAType, e.CA, e.KnownHostsFile, e.Fingerprint, pattern, e.KnownHostsFile)
}

// HostCertificateError means the server's host certificate comes from a
// trusted CA but is not valid for it: expired, not yet valid, revoked, or
// issued for other names.
type HostCertificateError struct {
	Host   string // host:port as dialled
	Reason string
}

func (e *HostCertificateError) Error() string {
	return fmt.Sprintf("host certificate of %s refused: %s; have the host's certificate reissued (ssh-keygen -s <CA key> -h -n <names> <host key>.pub)", e.Host, e.Reason)
}

// hostKeyChecker verifies server keys against known_hosts files.
type hostKeyChecker struct {
	file string              // the first file: where a missing key is to be added
	db   ssh.HostKeyCallback // nil when no file exists
	// marked holds the @cert-authority and @revoked lines, by file and
	// line: the library lists them among a host's recorded keys when a
	// plain key does not match, and they are none.
	marked map[string]map[int]bool
}

// newHostKeyChecker reads every file that exists; none existing means no
// host is known.
func newHostKeyChecker(files []string) (*hostKeyChecker, error) {
	c := &hostKeyChecker{file: files[0]}
	var existing []string
	for _, f := range files {
		if _, err := os.Stat(f); errors.Is(err, fs.ErrNotExist) {
			continue
		}
		existing = append(existing, f)
	}
	if len(existing) == 0 {
		return c, nil
	}
	cb, err := knownhosts.New(existing...)
	if err != nil {
		return nil, fmt.Errorf("read known hosts %s: %w", strings.Join(existing, ", "), err)
	}
	c.db = cb
	c.marked = map[string]map[int]bool{}
	for _, f := range existing {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("read known hosts %s: %w", f, err)
		}
		// Numbered as the library numbers them: every line counts.
		for i, line := range strings.Split(string(data), "\n") {
			if w := strings.Fields(line); len(w) > 0 && strings.HasPrefix(w[0], "@") {
				if c.marked[f] == nil {
					c.marked[f] = map[int]bool{}
				}
				c.marked[f][i+1] = true
			}
		}
	}
	return c, nil
}

// split sorts the keys the library lists for a host into recorded host
// keys and the CAs trusted for it.
func (c *hostKeyChecker) split(want []knownhosts.KnownKey) (keys, cas []knownhosts.KnownKey) {
	for _, k := range want {
		if c.marked[k.Filename][k.Line] {
			cas = append(cas, k)
		} else {
			keys = append(keys, k)
		}
	}
	return keys, cas
}

// known returns the keys recorded for address (host:port), and the CAs
// trusted for it.
func (c *hostKeyChecker) known(address string) (keys, cas []knownhosts.KnownKey) {
	if c.db == nil {
		return nil, nil
	}
	// Ask the database about a key it cannot hold: the mismatch error
	// lists every key it has for the address.
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil
	}
	probe, err := ssh.NewPublicKey(pub)
	if err != nil {
		return nil, nil
	}
	var keyErr *knownhosts.KeyError
	if errors.As(c.db(address, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 22}, probe), &keyErr) {
		return c.split(keyErr.Want)
	}
	return nil, nil
}

// certAlgorithms are the host certificate algorithms asked for when a CA
// is trusted for the host, before its recorded plain keys.
var certAlgorithms = []string{
	ssh.CertAlgoED25519v01, ssh.CertAlgoECDSA256v01, ssh.CertAlgoECDSA384v01, ssh.CertAlgoECDSA521v01,
	ssh.CertAlgoRSASHA512v01, ssh.CertAlgoRSASHA256v01,
}

// algorithms lists host key algorithms matching the recorded keys (host
// certificates first when a CA is trusted for the host), so the server
// presents a key we can verify rather than its first preference. Nil (the
// library's defaults, certificates first) when no key is recorded.
func (c *hostKeyChecker) algorithms(address string) []string {
	keys, cas := c.known(address)
	if len(keys) == 0 {
		return nil
	}
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
	if len(cas) > 0 {
		add(certAlgorithms...)
	}
	for _, k := range keys {
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
// UnknownHostKeyError, HostKeyChangedError and, for host certificates,
// UntrustedHostCertificateError and HostCertificateError.
func (c *hostKeyChecker) callback(hostname string, remote net.Addr, key ssh.PublicKey) error {
	cert, ok := key.(*ssh.Certificate)
	if !ok {
		return c.check(hostname, remote, key)
	}
	if c.db != nil {
		err := c.db(hostname, remote, key)
		if err == nil {
			return nil
		}
		// The library says so only in words: a CA trusted for this host
		// signed the certificate but something else is wrong with it.
		if !strings.Contains(err.Error(), "no authorities for hostname") {
			return &HostCertificateError{Host: hostname, Reason: strings.TrimPrefix(err.Error(), "ssh: ")}
		}
	}
	// No trusted CA: like OpenSSH, try the certified key as a plain key.
	err := c.check(hostname, remote, cert.Key)
	var unknown *UnknownHostKeyError
	if errors.As(err, &unknown) {
		return &UntrustedHostCertificateError{
			Host: hostname, KnownHostsFile: c.file,
			CAType: cert.SignatureKey.Type(), CA: ssh.FingerprintSHA256(cert.SignatureKey),
			Fingerprint: ssh.FingerprintSHA256(cert.Key),
		}
	}
	return err
}

// check verifies a plain key against the recorded ones.
func (c *hostKeyChecker) check(hostname string, remote net.Addr, key ssh.PublicKey) error {
	unknown := &UnknownHostKeyError{
		Host: hostname, KnownHostsFile: c.file,
		KeyType: key.Type(), Fingerprint: ssh.FingerprintSHA256(key),
	}
	if c.db == nil {
		return unknown
	}
	err := c.db(hostname, remote, key)
	var keyErr *knownhosts.KeyError
	var wants []knownhosts.KnownKey
	if errors.As(err, &keyErr) {
		wants, _ = c.split(keyErr.Want)
	}
	switch {
	case err == nil:
		return nil
	case keyErr != nil && len(wants) == 0:
		return unknown
	case keyErr != nil:
		want := wants[0]
		// Prefer the recorded key of the same type: that is the one that changed.
		for _, k := range wants {
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
