package remote

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"

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
	Err    error    // the underlying error, if any
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
	msg += ". Add the public key of one of them to the server's ~/.ssh/authorized_keys, or name the right key file in the ssh identities setting"
	return msg
}

func (e *AuthError) Unwrap() error { return e.Err }

// credentials gathers the signers offered to the server and a note of every
// source tried, for the error when none is accepted.
type credentials struct {
	signers []ssh.Signer
	tried   []string
	agent   net.Conn // open agent socket, closed after the handshake
}

func (c *credentials) close() {
	if c.agent != nil {
		c.agent.Close()
	}
}

func loadCredentials(cfg SSHConfig) (*credentials, error) {
	c := &credentials{}
	if cfg.UseAgent {
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
			c.signers = append(c.signers, signers...)
			c.tried = append(c.tried, fmt.Sprintf("ssh-agent (%d keys)", len(signers)))
		}
	}
	var locked *encryptedKeyError
	for _, file := range cfg.IdentityFiles {
		signer, err := loadKeyFile(file, cfg.Passphrase)
		if err != nil {
			if locked == nil {
				errors.As(err, &locked)
			}
			c.tried = append(c.tried, err.Error())
			continue
		}
		c.signers = append(c.signers, signer)
		c.tried = append(c.tried, fmt.Sprintf("%s (%s %s)", file, signer.PublicKey().Type(), ssh.FingerprintSHA256(signer.PublicKey())))
	}
	if len(c.signers) == 0 && locked != nil {
		// Nothing else to offer: the locked key is the whole story.
		c.close()
		return nil, locked
	}
	return c, nil
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
