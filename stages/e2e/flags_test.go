package e2e

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stagecoach/stagecoach/stages/exitcode"
	"github.com/stagecoach/stagecoach/stages/testenv"
)

// TestTargetFlagsBinary compiles the magefile as the README does and
// checks the targets' flags through the binary: `-h <target>` documents
// each flag, a flag wins over its variable, and a bad -env is a BadConfig
// exit naming the environment.
func TestTargetFlagsBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles a mage binary")
	}
	root := testenv.RepoRoot(t)
	bin := filepath.Join(t.TempDir(), "sc")
	cmd := exec.Command("go", "run", "mage.go", "-compile", bin)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go run mage.go -compile: %v\n%s", err, out)
	}
	sc := func(env []string, args ...string) (int, string) {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), env...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatalf("sc %s: %v", strings.Join(args, " "), err)
		}
		return cmd.ProcessState.ExitCode(), out.String()
	}

	for target, flags := range map[string][]string{
		"deploy": {
			"-env=<string>  ", "environment to deploy (default: the first in the config; STAGECOACH_ENV)",
			"-config=<string>", "STAGECOACH_CONFIG",
			"-allowDirty=<bool>", "deploy uncommitted changes (STAGECOACH_ALLOW_DIRTY)",
			"-force=<bool>", "STAGECOACH_FORCE",
			"-breakLock=<bool>", "STAGECOACH_BREAK_LOCK",
			"-lockWait=<time.Duration>", "STAGECOACH_LOCK_WAIT",
			"-report=<string>", "STAGECOACH_REPORT",
		},
		"rollback": {"-release=<string>", "STAGECOACH_RELEASE", "-restoreDB=<bool>", "STAGECOACH_RESTORE_DB", "-breakLock=<bool>"},
		"check":    {"-json=<string>", "STAGECOACH_JSON", "-env=<string>"},
		"detect":   {"-env=<string>", "-allowDirty=<bool>", "-force=<bool>"},
		"releases": {"-env=<string>", "-config=<string>"},
	} {
		code, out := sc(nil, "-h", target)
		if code != 0 || !strings.Contains(out, "Flags:") {
			t.Errorf("-h %s: exit %d, no Flags section:\n%s", target, code, out)
			continue
		}
		for _, f := range flags {
			if !strings.Contains(out, f) {
				t.Errorf("-h %s does not list %q:\n%s", target, f, out)
			}
		}
	}

	// -env wins over STAGECOACH_ENV (local exists in the repository's config).
	for _, env := range [][]string{nil, {"STAGECOACH_ENV=local"}} {
		code, out := sc(env, "detect", "-env=nosuch")
		if code != exitcode.BadConfig || !strings.Contains(out, `unknown environment "nosuch"`) {
			t.Errorf("%v detect -env=nosuch: exit %d, want %d naming the environment:\n%s", env, code, exitcode.BadConfig, out)
		}
	}
	// Without the flag, the variable still counts.
	if code, out := sc([]string{"STAGECOACH_ENV=nosuch"}, "detect"); code != exitcode.BadConfig || !strings.Contains(out, `"nosuch"`) {
		t.Errorf("STAGECOACH_ENV=nosuch detect: exit %d:\n%s", code, out)
	}
	// A flag the target does not take is a command-line error.
	if code, out := sc(nil, "rollback", "-allowDirty"); code != exitcode.BadConfig || !strings.Contains(out, "allowDirty") {
		t.Errorf("rollback -allowDirty: exit %d:\n%s", code, out)
	}
	if code, out := sc(nil, "deploy", "-lockWait=soon"); code != exitcode.BadConfig {
		t.Errorf("deploy -lockWait=soon: exit %d:\n%s", code, out)
	}
}
