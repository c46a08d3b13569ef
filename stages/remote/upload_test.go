package remote

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestUploadScriptHash runs upload.sh as the host does, fed through a
// script: with openssl it leaves the data's SHA-256 beside the partial
// file, and none when tee could not feed openssl every byte, as when
// /dev/fd cannot be opened: a hash of less than the file must never vouch
// for it.
func TestUploadScriptHash(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("needs openssl (apt-get install -y openssl)")
	}
	data := bytes.Repeat([]byte("stagecoach archive\n"), 50_000)
	sum := sha256.Sum256(data)
	for _, tc := range []struct {
		name    string
		fakeTee string // a tee in front of the real one on PATH
		hashed  bool
	}{
		{name: "tee feeds openssl", hashed: true},
		{name: "tee cannot open openssl's pipe", fakeTee: "#!/bin/sh\n# writes the file only, and fails as on an output it could not open\nshift 2\ncat > \"$1\"\nexit 1\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			p := filepath.Join(dir, "upload")
			tmp := p + ".partial-test"
			cmd := exec.Command("/bin/sh", "-c", uploadScript(p, tmp, "cat > /dev/null"))
			cmd.Stdin = bytes.NewReader(data)
			if tc.fakeTee != "" {
				bin := t.TempDir()
				if err := os.WriteFile(filepath.Join(bin, "tee"), []byte(tc.fakeTee), 0o755); err != nil {
					t.Fatal(err)
				}
				cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"))
			}
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("%v: %s", err, out)
			}
			if got := strings.TrimSpace(string(out)); got != strconv.Itoa(len(data)) {
				t.Fatalf("printed %q, want the size %d", got, len(data))
			}
			if got, err := os.ReadFile(tmp); err != nil || !bytes.Equal(got, data) {
				t.Fatalf("received %d bytes, %v", len(got), err)
			}
			line, err := os.ReadFile(tmp + ".sum")
			switch {
			case tc.hashed && err != nil:
				t.Fatalf("no hash: %v", err)
			case tc.hashed && !strings.HasPrefix(string(line), hex.EncodeToString(sum[:])+" "):
				t.Errorf("hash %q, want the data's", line)
			case !tc.hashed && err == nil:
				t.Errorf("a hash was kept, %q, though openssl did not get every byte", line)
			}
			entries, _ := os.ReadDir(dir)
			for _, e := range entries {
				if e.Name() != "upload.partial-test" && e.Name() != "upload.partial-test.sum" {
					t.Errorf("%s left behind", e.Name())
				}
			}
		})
	}
}
