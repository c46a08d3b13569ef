package remote_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stagecoach/stagecoach/stages/remote"
	"github.com/stagecoach/stagecoach/stages/testenv"
	"golang.org/x/crypto/ssh"
)

// TestUserCertificate: a key whose certificate (<key>-cert.pub) a CA
// trusted by the server signed logs in without being in authorized_keys;
// once the certificate has expired it is not offered, and the refusal
// says to renew it.
func TestUserCertificate(t *testing.T) {
	ca := testenv.NewCA(t)
	h := startSSHD(t, testenv.WithUserCA(ca))
	h.Deauthorize(t)
	key, _ := testenv.NewKeyFile(t, "")
	cfg := h.SSHConfig()
	cfg.IdentityFiles = []string{key}

	ca.SignUser(t, key, h.User, "-5m:+1h")
	r, err := dial(t, cfg)
	if err != nil {
		t.Fatalf("with a valid certificate: %v\n%s", err, h.Log())
	}
	if _, err := r.Run(context.Background(), remote.Cmd("true", "true")); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(h.Log(), "Accepted publickey for "+h.User) || !strings.Contains(h.Log(), "ED25519-CERT") {
		t.Errorf("sshd did not log a certificate login:\n%s", h.Log())
	}

	ca.SignUser(t, key, h.User, "-2h:-1h")
	_, err = dial(t, cfg)
	t.Log(err)
	var auth *remote.AuthError
	if !errors.As(err, &auth) || len(auth.Expired) != 1 {
		t.Fatalf("with an expired certificate: %v, want an AuthError naming it", err)
	}
	for _, want := range []string{key + "-cert.pub: certificate", "expired", "Renew the certificate", "ssh-keygen -s"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	// Only the plain key was offered, and refused.
	if auth.Keys != 1 {
		t.Errorf("%d keys offered, want 1 (the expired certificate left out)", auth.Keys)
	}
}

// TestHostCertificate: a host certificate is trusted through an
// @cert-authority line, with no key of the host recorded; one signed by
// another CA, or for other names, is refused saying so.
func TestHostCertificate(t *testing.T) {
	ca := testenv.NewCA(t)
	h := startSSHD(t, testenv.WithHostCertificate(ca))
	pattern := fmt.Sprintf("[%s]:%d", h.Addr, h.Port)
	trusting := func(t *testing.T, ca *testenv.CA) remote.SSHConfig {
		f := filepath.Join(t.TempDir(), "known_hosts")
		if err := os.WriteFile(f, []byte("# the organisation's CA\n"+ca.KnownHostsLine(pattern)), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg := h.SSHConfig()
		cfg.KnownHostsFile = f
		return cfg
	}

	t.Run("trusted CA", func(t *testing.T) {
		r, err := dial(t, trusting(t, ca))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.Run(context.Background(), remote.Cmd("true", "true")); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("unknown CA", func(t *testing.T) {
		other := testenv.NewCA(t)
		_, err := dial(t, trusting(t, other))
		t.Log(err)
		var untrusted *remote.UntrustedHostCertificateError
		if !errors.As(err, &untrusted) {
			t.Fatalf("error %v, want UntrustedHostCertificateError", err)
		}
		for _, want := range []string{ssh.FingerprintSHA256(ca.PublicKey), ssh.FingerprintSHA256(h.HostKey), "@cert-authority " + pattern} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q lacks %q", err, want)
			}
		}
		var unknown *remote.UnknownHostKeyError
		if errors.As(err, &unknown) {
			t.Error("reported as a plain unknown key")
		}
	})
	t.Run("unknown CA, key recorded", func(t *testing.T) {
		// The host's plain key in known_hosts still identifies it.
		cfg := trusting(t, testenv.NewCA(t))
		data, _ := os.ReadFile(h.KnownHostsFile)
		f, _ := os.OpenFile(cfg.KnownHostsFile, os.O_APPEND|os.O_WRONLY, 0o600)
		f.Write(data)
		f.Close()
		if _, err := dial(t, cfg); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("no certificate, only a CA recorded", func(t *testing.T) {
		// The library lists the CA among the host's keys: it must not make
		// a host without a certificate look like a changed key.
		plain := startSSHD(t)
		f := filepath.Join(t.TempDir(), "known_hosts")
		os.WriteFile(f, []byte(ca.KnownHostsLine(fmt.Sprintf("[%s]:%d", plain.Addr, plain.Port))), 0o600)
		cfg := plain.SSHConfig()
		cfg.KnownHostsFile = f
		_, err := dial(t, cfg)
		var unknown *remote.UnknownHostKeyError
		var changed *remote.HostKeyChangedError
		if !errors.As(err, &unknown) || errors.As(err, &changed) {
			t.Fatalf("error %v, want UnknownHostKeyError", err)
		}
	})
	t.Run("other names", func(t *testing.T) {
		misnamed := startSSHD(t, testenv.WithHostCertificate(ca, "web1.example.com"))
		f := filepath.Join(t.TempDir(), "known_hosts")
		os.WriteFile(f, []byte(ca.KnownHostsLine(fmt.Sprintf("[%s]:%d", misnamed.Addr, misnamed.Port))), 0o600)
		cfg := misnamed.SSHConfig()
		cfg.KnownHostsFile = f
		_, err := dial(t, cfg)
		t.Log(err)
		var bad *remote.HostCertificateError
		if !errors.As(err, &bad) || !strings.Contains(err.Error(), "web1.example.com") {
			t.Fatalf("error %v, want HostCertificateError naming the certificate's principals", err)
		}
	})
}
