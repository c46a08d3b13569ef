package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"golang.org/x/crypto/ssh"
)

// CA is an OpenSSH certificate authority of the test's own, signing with
// ssh-keygen -s as an organisation's CA would.
type CA struct {
	KeyFile       string        // its private key
	PublicKeyFile string        // KeyFile + ".pub", for TrustedUserCAKeys
	PublicKey     ssh.PublicKey // the key in PublicKeyFile
}

var certSerial atomic.Int64

// NewCA makes a CA with a fresh ed25519 key. It needs ssh-keygen.
func NewCA(t testing.TB) *CA {
	t.Helper()
	RequireTool(t, "ssh-keygen", "apt-get install -y openssh-client")
	file, signer := writeKey(t, t.TempDir(), "ca", "")
	return &CA{KeyFile: file, PublicKeyFile: file + ".pub", PublicKey: signer.PublicKey()}
}

// SignUser certifies the public key beside keyFile (keyFile.pub) for the
// login principal, writing keyFile-cert.pub, where the client finds it.
// validity is ssh-keygen's -V ("-2h:-1h" expired an hour ago); "" forever.
func (ca *CA) SignUser(t testing.TB, keyFile, principal, validity string) string {
	t.Helper()
	args := []string{"-n", principal}
	if validity != "" {
		args = append(args, "-V", validity)
	}
	return ca.sign(t, keyFile, "user "+principal, args...)
}

// SignHost certifies the host key beside keyFile (keyFile.pub) for the
// names and addresses clients dial it by, writing keyFile-cert.pub.
func (ca *CA) SignHost(t testing.TB, keyFile string, principals ...string) string {
	t.Helper()
	return ca.sign(t, keyFile, "host "+strings.Join(principals, ","), "-h", "-n", strings.Join(principals, ","))
}

func (ca *CA) sign(t testing.TB, keyFile, id string, args ...string) string {
	t.Helper()
	serial := fmt.Sprint(certSerial.Add(1))
	argv := append([]string{"-q", "-s", ca.KeyFile, "-I", "test " + id, "-z", serial}, args...)
	out, err := exec.Command("ssh-keygen", append(argv, keyFile+".pub")...).CombinedOutput()
	if err != nil {
		t.Fatalf("ssh-keygen -s: %v\n%s", err, out)
	}
	cert := keyFile + "-cert.pub"
	if _, err := os.Stat(cert); err != nil {
		t.Fatalf("ssh-keygen wrote no certificate: %v", err)
	}
	return cert
}

// KnownHostsLine is the @cert-authority line trusting ca for the hosts
// (known_hosts patterns, e.g. "[127.0.0.1]:2222" or "*.example.com").
func (ca *CA) KnownHostsLine(patterns ...string) string {
	return "@cert-authority " + strings.Join(patterns, ",") + " " + strings.TrimSpace(string(ssh.MarshalAuthorizedKey(ca.PublicKey))) + "\n"
}

// readCertificate parses a -cert.pub file.
func readCertificate(t testing.TB, file string) *ssh.Certificate {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey(data)
	if err != nil {
		t.Fatalf("parse %s: %v", filepath.Base(file), err)
	}
	cert, ok := pub.(*ssh.Certificate)
	if !ok {
		t.Fatalf("%s holds no certificate", file)
	}
	return cert
}
