package archive

import (
	"bytes"
	"path"
	"testing"
)

// FuzzReadManifest decodes arbitrary manifest text. It must not panic; a
// manifest it accepts has only safe paths, sorted and unique, its files
// are found by Lookup and Under, and it encodes to a manifest that decodes
// and encodes again to the same bytes. The seeds are the manifests the
// package stage wrote for real deploys of the example app (a first deploy,
// one reusing the backend, one after a rollback) and their copies on the
// server.
func FuzzReadManifest(f *testing.F) {
	f.Add([]byte(`{"release":"20261128T122605Z-b609e69","revision":"b609e69","created":"2026-11-28T12:26:05Z","files":[{"path":"web/index.html","size":5,"mode":420,"sha256":"00"},{"path":"web/up","size":0,"mode":511,"link":".."}],"archive":{"sha256":"","size":0,"files":2}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ReadManifest(bytes.NewReader(data))
		if err != nil {
			return
		}
		for i, f := range m.Files {
			if err := checkName(f.Path); err != nil {
				t.Fatalf("accepted unsafe path: %v", err)
			}
			if i > 0 && m.Files[i-1].Path >= f.Path {
				t.Fatalf("accepted unsorted or duplicated paths %q, %q", m.Files[i-1].Path, f.Path)
			}
			if got, ok := m.Lookup(f.Path); !ok || got != f {
				t.Fatalf("Lookup(%q) = %+v, %v", f.Path, got, ok)
			}
			if dir := path.Dir(f.Path); dir != "." && !containsFile(m.Under(dir), f) {
				t.Fatalf("Under(%q) misses %q", dir, f.Path)
			}
		}
		if got := m.Under(""); len(got) != len(m.Files) {
			t.Fatalf("Under(\"\") has %d files, the manifest %d", len(got), len(m.Files))
		}
		for _, r := range m.Reuse {
			if checkName(r.Path) != nil || checkName(r.From) != nil {
				t.Fatalf("accepted unsafe reuse %q from %q", r.Path, r.From)
			}
		}
		var b1 bytes.Buffer
		if err := m.Encode(&b1); err != nil {
			t.Fatal(err)
		}
		m2, err := ReadManifest(bytes.NewReader(b1.Bytes()))
		if err != nil {
			t.Fatalf("Encode wrote a manifest ReadManifest refuses: %v\n%s", err, b1.Bytes())
		}
		var b2 bytes.Buffer
		if err := m2.Encode(&b2); err != nil || !bytes.Equal(b1.Bytes(), b2.Bytes()) {
			t.Fatalf("manifest round trip is not stable (%v):\n%s\n---\n%s", err, b1.Bytes(), b2.Bytes())
		}
	})
}

func containsFile(files []File, f File) bool {
	for _, g := range files {
		if g == f {
			return true
		}
	}
	return false
}
