package ship

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stagecoach/stagecoach/stages/remote"
	"github.com/stagecoach/stagecoach/stages/server"
)

func TestWriteMetadata(t *testing.T) {
	l := server.Layout{Root: filepath.Join(t.TempDir(), "srv")}
	big := strings.Repeat("0123456789abcdef  site/assets/file.js\n", 20000)
	files := []metaFile{
		{l.SumsPath("r1"), []byte(big)},
		{l.LinksPath("r1"), nil},
		{l.ManifestPath("r1"), []byte(`{"release":"r1"}` + "\n")},
	}
	cmd, sent, err := writeMetadata(l, files)
	if err != nil {
		t.Fatal(err)
	}
	if sent <= 0 || sent > int64(len(big))/4 {
		t.Errorf("sends %d bytes for %d bytes of repetitive lists", sent, len(big))
	}
	if _, err := remote.NewLocal().Run(context.Background(), cmd); err != nil {
		t.Fatalf("run: %v", err)
	}
	for _, f := range files {
		got, err := os.ReadFile(f.path)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(f.data) {
			t.Errorf("%s: %d bytes, want %d", f.path, len(got), len(f.data))
		}
	}
	if left, _ := os.ReadDir(l.IncomingDir()); len(left) != 0 {
		t.Errorf("left in incoming/: %v", left)
	}
}

func TestWriteMetadataTruncated(t *testing.T) {
	l := server.Layout{Root: filepath.Join(t.TempDir(), "srv")}
	cmd, sent, err := writeMetadata(l, []metaFile{{l.ManifestPath("r1"), []byte(strings.Repeat("x", 100000))}})
	if err != nil {
		t.Fatal(err)
	}
	// A stream cut short, as by a dropped connection, must write nothing.
	data := make([]byte, sent-10)
	cmd.Stdin.Read(data)
	cmd.Stdin = strings.NewReader(string(data))
	if _, err := remote.NewLocal().Run(context.Background(), cmd); err == nil {
		t.Fatal("a truncated stream was accepted")
	}
	if _, err := os.Stat(l.ManifestPath("r1")); !os.IsNotExist(err) {
		t.Errorf("manifest written from a truncated stream: %v", err)
	}
}
