package run

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stagecoach/stagecoach/stages/exitcode"
	"github.com/stagecoach/stagecoach/stages/ui"
)

// TestOpenBadConfig: every way the configuration can be wrong stops a run
// with exit code BadConfig and an error naming the file and line.
func TestOpenBadConfig(t *testing.T) {
	dir := t.TempDir()
	good := "app: shop\ncomponents:\n  web:\n    watch: [\"web/**\"]\n    build: make\n    output: web/dist\nenvironments:\n  prod:\n    hosts: [local]\n    root: srv\n"
	for _, tc := range []struct {
		name, config, env, want string
	}{
		{"malformed yaml", "app: [shop\n", "", "stagecoach.yml:1"},
		{"unknown key", strings.Replace(good, "build:", "biuld:", 1), "", `stagecoach.yml:5: components.web: unknown key "biuld"`},
		{"bad glob", strings.Replace(good, `"web/**"`, `"web/[**"`, 1), "", "stagecoach.yml:4"},
		{"unknown environment", good, "staging", `unknown environment "staging" (known: prod)`},
		{"missing secret", strings.Replace(good, "root: srv\n", "root: srv\n    env: { secrets: [NOT_SET_ANYWHERE_42] }\n", 1), "", "NOT_SET_ANYWHERE_42"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, "stagecoach.yml")
			if err := os.WriteFile(path, []byte(tc.config), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := Open(Options{ConfigPath: path, Environment: tc.env}, ui.Discard())
			if err == nil || exitcode.Of(err) != exitcode.BadConfig || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v (exit %d), want exit %d and %q", err, exitcode.Of(err), exitcode.BadConfig, tc.want)
			}
		})
	}
	if _, err := Open(Options{ConfigPath: filepath.Join(dir, "missing.yml")}, ui.Discard()); exitcode.Of(err) != exitcode.BadConfig {
		t.Fatalf("a missing config file: %v (exit %d)", err, exitcode.Of(err))
	}
}
