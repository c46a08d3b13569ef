package remote

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"net"
	"os"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// PassphraseEnv names the environment variable read for the passphrase of
// encrypted key files when SSHConfig.Passphrase is nil.
const PassphraseEnv = "STAGECOACH_SSH_PASSPHRASE"

// AuthError means the server accepted none of the credentials offered.
type AuthError struct {
	Target string
	Tried  []string // each source of keys and what came of it
	Keys   int      // keys offered to the server; 0 when none was usable
	// Expired lists the user certificates left out because they are
	// expired or not yet valid, for the advice to renew them.
	Expired []string
	Err     error // the underlying error, if any
}

func (e *AuthError) Error() string {
	msg := fmt.Sprintf("authenticate to %s: the server accepted none of %d keys", e.Target, e.Keys)
	if e.Keys == 0 {
		msg = fmt.Sprintf("authenticate to %s: no usable key to offer", e.Target)
	}
	if len(e.Tried) == 0 {
		msg += "; no credentials were available (no ssh-agent, no identity file)"
	} else {
		msg += "; tried: " + strings.Join(e.Tried, "; ")
	}
	if len(e.Expired) > 0 {
		msg += ". Renew the certificate (ssh-keygen -s <CA key> -I <id> -n <user> -V <validity> <key>.pub writes <key>-cert.pub): " + strings.Join(e.Expired, ", ")
		return msg + "; or add the public key to the server's ~/.ssh/authorized_keys"
	}
	msg += ". Add the public key of one of them to the server's ~/.ssh/authorized_keys, or name the right key file in the ssh identities setting"
	return msg
}

func (e *AuthError) Unwrap() error { return e.Err }

// credentials gathers the signers offered to the server and a note of every
// source tried, for the error when none is accepted.
type credentials struct {
	signers []ssh.Signer
	tried   []string
	expired []string // certificates left out, as "<file> (expired ...)"
	agent   net.Conn // open agent socket, closed after the handshake
}

func (c *credentials) close() {
	if c.agent != nil {
		c.agent.Close()
	}
}

// loadCredentials gathers what h may offer: the agent's keys (with
// IdentitiesOnly only those of h's identity files, as OpenSSH does), then
// each identity file, its certificate (<file>-cert.pub) first.
func loadCredentials(h *hop) (*credentials, error) {
	c := &credentials{}
	var agentSigners []ssh.Signer
	if h.useAgent {
		sock := os.Getenv("SSH_AUTH_SOCK")
		switch conn, err := net.Dial("unix", sock); {
		case sock == "":
			c.tried = append(c.tried, "ssh-agent: SSH_AUTH_SOCK is not set")
		case err != nil:
			c.tried = append(c.tried, fmt.Sprintf("ssh-agent at %s: %v", sock, err))
		default:
			signers, err := agent.NewClient(conn).Signers()
			if err != nil {
				conn.Close()
				c.tried = append(c.tried, fmt.Sprintf("ssh-agent at %s: %v", sock, err))
				break
			}
			c.agent = conn
			agentSigners = signers
		}
	}
	var locked *encryptedKeyError
	var fileSigners []ssh.Signer
	files := map[string]bool{} // public keys of the identity files
	for _, file := range h.identities {
		signer, err := loadKeyFile(file, h.passphrase)
		if err != nil {
			if locked == nil {
				errors.As(err, &locked)
			}
			// A locked key the agent holds is still this identity.
			if pub := readPublicKey(file + ".pub"); pub != nil {
				files[string(pub.Marshal())] = true
			}
			c.tried = append(c.tried, err.Error())
			continue
		}
		files[string(signer.PublicKey().Marshal())] = true
		if cs := c.certificate(file, signer); cs != nil {
			fileSigners = append(fileSigners, cs)
		}
		fileSigners = append(fileSigners, signer)
		c.tried = append(c.tried, fmt.Sprintf("%s (%s %s)", file, signer.PublicKey().Type(), ssh.FingerprintSHA256(signer.PublicKey())))
	}
	if c.agent != nil {
		kept := agentSigners
		if h.identitiesOnly {
			kept = nil
			for _, s := range agentSigners {
				if files[string(plainKey(s.PublicKey()).Marshal())] {
					kept = append(kept, s)
				}
			}
		}
		note := fmt.Sprintf("ssh-agent (%d keys)", len(agentSigners))
		if len(kept) != len(agentSigners) {
			note = fmt.Sprintf("ssh-agent (%d keys, %d of them the identity files': IdentitiesOnly)", len(agentSigners), len(kept))
		}
		// The agent's come first, as before; a note in the order they are offered.
		c.tried = append([]string{note}, c.tried...)
		c.signers = append(c.signers, kept...)
	}
	seen := map[string]bool{}
	for _, s := range c.signers {
		seen[string(s.PublicKey().Marshal())] = true
	}
	for _, s := range fileSigners {
		if !seen[string(s.PublicKey().Marshal())] {
			c.signers = append(c.signers, s)
		}
	}
	if len(c.signers) == 0 && locked != nil {
		// Nothing else to offer: the locked key is the whole story.
		c.close()
		return nil, locked
	}
	return c, nil
}

// certificate returns the signer of the user certificate beside file, or
// nil, noting why one there cannot be used.
func (c *credentials) certificate(file string, signer ssh.Signer) ssh.Signer {
	certFile := file + "-cert.pub"
	data, err := os.ReadFile(certFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	note := func(format string, args ...any) ssh.Signer {
		c.tried = append(c.tried, certFile+": "+fmt.Sprintf(format, args...))
		return nil
	}
	if err != nil {
		return note("%v", err)
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey(data)
	if err != nil {
		return note("not a certificate: %v", err)
	}
	cert, ok := pub.(*ssh.Certificate)
	switch {
	case !ok:
		return note("not a certificate but a plain %s key", pub.Type())
	case cert.CertType != ssh.UserCert:
		return note("a host certificate, not a user certificate")
	case !bytes.Equal(cert.Key.Marshal(), signer.PublicKey().Marshal()):
		return note("certifies another key (%s), not %s", ssh.FingerprintSHA256(cert.Key), ssh.FingerprintSHA256(signer.PublicKey()))
	}
	now := time.Now()
	if after := certTime(cert.ValidAfter); now.Before(after) {
		c.expired = append(c.expired, fmt.Sprintf("%s (not valid before %s)", certFile, after.UTC().Format(time.RFC3339)))
		return note("certificate %q not valid before %s: left out", cert.KeyId, after.UTC().Format(time.RFC3339))
	}
	validity := "no expiry"
	if cert.ValidBefore != ssh.CertTimeInfinity {
		before := certTime(cert.ValidBefore)
		if !now.Before(before) {
			c.expired = append(c.expired, fmt.Sprintf("%s (expired %s)", certFile, before.UTC().Format(time.RFC3339)))
			return note("certificate %q expired %s: left out", cert.KeyId, before.UTC().Format(time.RFC3339))
		}
		validity = "valid until " + before.UTC().Format(time.RFC3339)
	}
	cs, err := ssh.NewCertSigner(cert, signer)
	if err != nil {
		return note("%v", err)
	}
	c.tried = append(c.tried, fmt.Sprintf("%s (certificate %q for %s, %s)", certFile, cert.KeyId, strings.Join(cert.ValidPrincipals, ","), validity))
	return cs
}

// certTime is a certificate's validity bound; beyond int64 is forever.
func certTime(t uint64) time.Time {
	if t > math.MaxInt64 {
		return time.Unix(math.MaxInt64, 0)
	}
	return time.Unix(int64(t), 0)
}

// plainKey is the key a certificate certifies, or key itself.
func plainKey(key ssh.PublicKey) ssh.PublicKey {
	if cert, ok := key.(*ssh.Certificate); ok {
		return cert.Key
	}
	return key
}

// readPublicKey reads an authorized_keys-format public key file, or nil.
func readPublicKey(file string) ssh.PublicKey {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey(data)
	if err != nil {
		return nil
	}
	return pub
}

// encryptedKeyError is a passphrase-protected key with no passphrase given.
type encryptedKeyError struct{ file string }

func (e *encryptedKeyError) Error() string {
	return fmt.Sprintf("key %s is encrypted and no passphrase was given: set %s, or load the key into ssh-agent (ssh-add %s)",
		e.file, PassphraseEnv, e.file)
}

func loadKeyFile(file string, passphrase func(string) ([]byte, error)) (ssh.Signer, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("key %s: %w", file, err)
	}
	signer, err := ssh.ParsePrivateKey(pem)
	var missing *ssh.PassphraseMissingError
	if !errors.As(err, &missing) {
		if err != nil {
			return nil, fmt.Errorf("key %s: %w", file, err)
		}
		return signer, nil
	}
	var pass []byte
	switch {
	case passphrase != nil:
		if pass, err = passphrase(file); err != nil {
			return nil, fmt.Errorf("passphrase for key %s: %w", file, err)
		}
	case os.Getenv(PassphraseEnv) != "":
		pass = []byte(os.Getenv(PassphraseEnv))
	default:
		return nil, &encryptedKeyError{file: file}
	}
	signer, err = ssh.ParsePrivateKeyWithPassphrase(pem, pass)
	if err != nil {
		return nil, fmt.Errorf("decrypt key %s: %w", file, err)
	}
	return signer, nil
}

// methods is what the client offers: every key in one publickey method, so
// each is tried in turn.
func (c *credentials) methods() []ssh.AuthMethod {
	if len(c.signers) == 0 {
		return nil
	}
	return []ssh.AuthMethod{ssh.PublicKeys(c.signers...)}
}
