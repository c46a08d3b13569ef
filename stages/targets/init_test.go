package targets

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stagecoach/stagecoach/stages/exitcode"
)

func TestInitWritesAndSaysWhatNext(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "web"), 0o755)
	os.WriteFile(filepath.Join(dir, "web", "package.json"), []byte(`{"scripts":{"build":"vite build"}}`), 0o644)
	os.WriteFile(filepath.Join(dir, "web", "package-lock.json"), []byte(`{}`), 0o644)
	var out bytes.Buffer
	if err := initRepo(dir, &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"found: npm package in web/ (package-lock.json)\n", "wrote stagecoach.yml\n", "wrote magefiles/stagecoach.go\n", "wrote mage.go\n",
		"next:\n  1. give the repository a Go module for the magefile: go mod init ", "go get github.com/stagecoach/stagecoach@latest && go mod tidy"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	before, _ := os.ReadFile(filepath.Join(dir, "stagecoach.yml"))
	err := initRepo(dir, &out)
	if exitcode.Of(err) != exitcode.BadConfig || !strings.Contains(err.Error(), "stagecoach.yml, magefiles/stagecoach.go, mage.go already exist") {
		t.Errorf("second init = %v", err)
	}
	if after, _ := os.ReadFile(filepath.Join(dir, "stagecoach.yml")); !bytes.Equal(before, after) {
		t.Error("the second init changed stagecoach.yml")
	}
}
