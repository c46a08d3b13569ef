package e2e

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stagecoach/stagecoach/stages/exitcode"
	"github.com/stagecoach/stagecoach/stages/pipeline"
	"github.com/stagecoach/stagecoach/stages/testenv"
)

// TestDeployRefusedAccess: a host whose key is not in known_hosts, a
// changed host key, a client key the host does not accept and a host that
// is down each stop the deploy before anything is written, with exit code
// Unreachable and a message that says what to do.
func TestDeployRefusedAccess(t *testing.T) {
	host := testenv.StartSSHD(t)
	p := testenv.NewProject(t, testenv.ProjectOptions{Hosts: []*testenv.Host{host}})
	config := readFile(t, p.Config)
	known := regexp.MustCompile(`known_hosts: "([^"]+)"`).FindStringSubmatch(config)[1]
	identity := regexp.MustCompile(`identities: \["([^"]+)"\]`).FindStringSubmatch(config)[1]
	trusted := readFile(t, known)
	other, _ := testenv.NewKeyFile(t, "")
	stranger := testenv.StartSSHD(t, testenv.WithAddr("127.0.0.2"))

	for _, tc := range []struct {
		name  string
		setup func()
		want  []string
	}{
		{"unknown host key", func() { writeText(t, known, "") },
			[]string{"is not in " + known, "SHA256:", "ssh-keyscan -p"}},
		{"changed host key", func() {
			// The key of another server, recorded for this one's address.
			writeText(t, known, strings.Replace(readFile(t, stranger.KnownHostsFile),
				fmt.Sprintf("[127.0.0.2]:%d", stranger.Port), fmt.Sprintf("[127.0.0.1]:%d", host.Port), 1))
		}, []string{"SHA256:", "ssh-keygen -R"}},
		{"key not accepted", func() {
			writeText(t, known, trusted)
			p.Write("stagecoach.yml", strings.Replace(config, identity, other, 1))
		}, []string{"auth", other}},
		{"host down", func() {
			p.Write("stagecoach.yml", config)
			host.Stop()
		}, []string{"127.0.0.1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.setup()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			start := time.Now()
			res := deploy(t, ctx, p, pipeline.Options{AllowDirty: true})
			if res.err == nil || exitcode.Of(res.err) != exitcode.Unreachable {
				t.Fatalf("err %v (exit %d), want exit %d\n%s", res.err, exitcode.Of(res.err), exitcode.Unreachable, res.log)
			}
			for _, w := range tc.want {
				if !strings.Contains(res.err.Error(), w) {
					t.Errorf("error lacks %q: %v", w, res.err)
				}
			}
			t.Logf("%v", res.err)
			if took := time.Since(start); took > 30*time.Second {
				t.Errorf("refused after %s: should fail within the dial timeout", took)
			}
			if _, err := os.Stat(p.Root); !os.IsNotExist(err) {
				t.Errorf("the deploy root was created: %v", err)
			}
		})
	}
}

func writeText(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}
