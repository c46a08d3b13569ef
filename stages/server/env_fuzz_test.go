package server

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// envShells are the shells that source shared/.env on a server: /bin/sh
// (dash on Debian) and, where it is installed, bash as sh, which is
// /bin/sh elsewhere.
func envShells() [][]string {
	shells := [][]string{{"/bin/sh"}}
	if p, err := exec.LookPath("bash"); err == nil {
		shells = append(shells, []string{p, "--posix"})
	}
	return shells
}

// FuzzFormatEnv: every variable FormatEnv accepts comes back byte for
// byte from the shell that sources the file the way run_in.sh does (set -a;
// . ENV_FILE), including quotes, newlines, $, backquotes and backslashes,
// and the variables written before and after it are not disturbed. The
// value goes in under the fuzzed name and under a plain one, so that a
// name FormatEnv refuses (which is fine) still tests the value.
func FuzzFormatEnv(f *testing.F) {
	f.Add("APP_MODE", "production")
	f.Add("APP_MODE", "it's $x")
	f.Fuzz(func(t *testing.T, name, value string) {
		vars := map[string]string{"AA_BEFORE": "before", "SC_VALUE": value, name: value, "ZZ_AFTER": "after"}
		env, err := FormatEnv(vars)
		if err != nil {
			delete(vars, name)
			vars["SC_VALUE"] = value
			if env, err = FormatEnv(vars); err != nil {
				return
			}
		}
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "env"), env, 0o600); err != nil {
			t.Fatal(err)
		}
		// Every name is a valid shell name: FormatEnv refuses any other.
		script := "set -a; . ./env; set +a"
		var want bytes.Buffer
		for _, k := range []string{"AA_BEFORE", "SC_VALUE", name, "ZZ_AFTER"} {
			if v, ok := vars[k]; ok {
				script += fmt.Sprintf(` && printf '%%s\0' "${%s}"`, k)
				want.WriteString(v + "\x00")
			}
		}
		for _, sh := range envShells() {
			cmd := exec.Command(sh[0], append(sh[1:], "-c", script)...)
			cmd.Dir = dir
			cmd.Env = []string{"PATH=/usr/bin:/bin", "LC_ALL=C"}
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Run(); err != nil || !bytes.Equal(stdout.Bytes(), want.Bytes()) {
				t.Fatalf("%s sourcing\n%s\ngave %q (%v, stderr %q), want %q", sh[0], env, stdout.Bytes(), err, stderr.Bytes(), want.Bytes())
			}
		}
	})
}

// TestFormatEnvRefusesWhatNoShellKeeps: the variables FuzzFormatEnv found
// sourcing cannot give back are refused, not written: a value with a NUL
// byte, which no shell variable holds, and the shell's own variables, of
// which dash exits on a non-numeric OPTIND and bash on its read-only UID.
func TestFormatEnvRefusesWhatNoShellKeeps(t *testing.T) {
	for _, vars := range []map[string]string{
		{"A": "\x00"}, {"A": "x\x00y"},
		{"OPTIND": "v 1"}, {"UID": "1000"}, {"RANDOM": "4"}, {"BASH_ENV": "/tmp/x"}, {"_": "x"},
	} {
		if env, err := FormatEnv(vars); err == nil {
			t.Errorf("FormatEnv(%q) = %q, want an error", vars, env)
		}
	}
	if _, err := FormatEnv(map[string]string{"BASHFUL": "x", "PATH": "/opt/app/bin:/usr/bin", "IFS": ":"}); err != nil {
		t.Errorf("ordinary names refused: %v", err)
	}
}
