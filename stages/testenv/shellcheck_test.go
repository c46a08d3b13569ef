package testenv_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stagecoach/stagecoach/stages/testenv"
)

// errorsOf is a test that keeps its errors to itself, for seeing what a
// helper reports; the rest goes to the real test.
type errorsOf struct {
	testing.TB
	errs []string
}

func (e *errorsOf) Errorf(format string, args ...any) {
	e.errs = append(e.errs, fmt.Sprintf(format, args...))
}

func TestShellcheck(t *testing.T) {
	clean := &errorsOf{TB: t}
	testenv.Shellcheck(clean, map[string][]byte{"ok.sh": []byte("# shellcheck shell=sh\nprintf '%s\\n' \"$1\"\n")})
	if len(clean.errs) > 0 {
		t.Errorf("a clean script was reported: %q", clean.errs)
	}
	// A bashism and an unquoted expansion, in a script under a directory.
	dirty := &errorsOf{TB: t}
	testenv.Shellcheck(dirty, map[string][]byte{
		"ok.sh":          []byte("echo ok\n"),
		"scripts/bad.sh": []byte("if [[ -n $1 ]]; then echo $1; fi\n"),
	})
	if len(dirty.errs) != 1 || !strings.Contains(dirty.errs[0], "In scripts/bad.sh line 1") || !strings.Contains(dirty.errs[0], "SC3010") || strings.Contains(dirty.errs[0], "ok.sh") {
		t.Errorf("findings reported as %q, want one error with the bashism of scripts/bad.sh only", dirty.errs)
	}
}
