package check

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/stagecoach/stagecoach/stages/exitcode"
	"github.com/stagecoach/stagecoach/stages/remote"
)

// TestConnectAction: what a check that could not connect advises depends
// on why: a changed or unknown host key, refused keys, or no answer.
func TestConnectAction(t *testing.T) {
	// As fleet.Open returns them.
	wrap := func(err error) error {
		return exitcode.With(exitcode.Unreachable, fmt.Errorf("connect to deploy@web1:2222: %w", err))
	}
	changed := &remote.HostKeyChangedError{Host: "web1:2222", KnownHostsFile: "/home/ci/.ssh/known_hosts", Line: 7,
		KeyType: "ssh-ed25519", Fingerprint: "SHA256:new", Known: "SHA256:old"}
	unknown := &remote.UnknownHostKeyError{Host: "web1:22", KnownHostsFile: "/home/ci/.ssh/known_hosts",
		KeyType: "ssh-ed25519", Fingerprint: "SHA256:new"}
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
	generic := "see that it is up"
	for _, tc := range []struct {
		name string
		err  error
		want []string
		not  []string
	}{
		{"host key changed", wrap(changed),
			[]string{"do not deploy", "SHA256:new", "administrator", "ssh-keygen -lf", "line 7 of /home/ci/.ssh/known_hosts",
				"ssh-keygen -R '[web1]:2222' -f /home/ci/.ssh/known_hosts", "ssh-keyscan -p 2222 web1 >> /home/ci/.ssh/known_hosts"},
			[]string{generic}},
		{"host key unknown", wrap(unknown),
			[]string{"SHA256:new", "administrator", "ssh-keyscan -p 22 web1 >> /home/ci/.ssh/known_hosts"},
			[]string{generic, "do not deploy"}},
		{"keys refused", &remote.AuthError{Target: "deploy@web1:22", Keys: 2},
			[]string{"authorized_keys", "deploy@web1:22", "identities"}, []string{generic, "known_hosts"}},
		{"unreachable", wrap(fmt.Errorf("(within 10s): %w; is the host up", refused)),
			[]string{"up", "sshd", "port", "firewall"}, []string{"known_hosts", "authorized_keys"}},
		{"no handshake", wrap(fmt.Errorf("no SSH handshake within 10s: %w", context.DeadlineExceeded)),
			[]string{"up", "sshd", "port"}, []string{"known_hosts", "authorized_keys"}},
		{"anything else", wrap(errors.New("read known hosts: permission denied")),
			[]string{generic, "known_hosts", "identities"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := connectAction(tc.err)
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("action %q lacks %q", got, w)
				}
			}
			for _, n := range tc.not {
				if strings.Contains(got, n) {
					t.Errorf("action %q says %q", got, n)
				}
			}
		})
	}
}
