package testenv

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// fakeRelease is a release directory laid out as the example frontend's
// build lays out dist/, under <root>/releases/<id>/frontend.
type fakeRelease struct {
	id, version string
	assets      []string // as the page names them, in its order: stylesheet, script
}

// writeRelease writes a release whose page names a content-hashed script
// and stylesheet that embed or belong to version. The script is large
// enough to be sent in many pieces, so a torn response would show.
func writeRelease(t *testing.T, root, id, version string) fakeRelease {
	t.Helper()
	js := fmt.Sprintf("const BUILD_VERSION = %q;\n", version) +
		strings.Repeat(fmt.Sprintf("console.log(%q);\n", "filler "+version), 4000)
	css := fmt.Sprintf("/* %s */\nbody { color: #333; }\n", version) + strings.Repeat(".x { margin: 0; }\n", 500)
	r := fakeRelease{id: id, version: version}
	files := map[string]string{}
	for _, f := range []struct{ name, ext, content string }{{"index", "css", css}, {"index", "js", js}} {
		sum := sha256.Sum256([]byte(f.content))
		p := fmt.Sprintf("assets/%s-%s.%s", f.name, hex.EncodeToString(sum[:4]), f.ext)
		r.assets = append(r.assets, p)
		files[p] = f.content
	}
	files["index.html"] = indexPage(version, r.assets[0], r.assets[1])
	writeFiles(t, filepath.Join(root, "releases", id, "frontend"), files)
	return r
}

// indexPage is a page shaped like the example's index.html.
func indexPage(version, css, js string) string {
	return fmt.Sprintf(`<!doctype html>
<html lang="en">
<head>
  <meta name="version" content="%s">
  <link rel="stylesheet" href="%s">
  <script type="module" src="%s"></script>
</head>
<body>
  <footer>Frontend <span id="frontend-version">%s</span></footer>
</body>
</html>
`, version, css, js, version)
}

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// carryAssets copies from's assets into to, as a deploy must so that pages
// loaded before its swap can still load their assets after it.
func carryAssets(t *testing.T, root string, from, to fakeRelease) {
	t.Helper()
	for _, a := range from.assets {
		b, err := os.ReadFile(filepath.Join(root, "releases", from.id, "frontend", a))
		if err != nil {
			t.Fatal(err)
		}
		writeFiles(t, filepath.Join(root, "releases", to.id, "frontend"), map[string]string{a: string(b)})
	}
}

// swapCurrent points <root>/current at releases/<id> the way a deploy
// does: a new symlink under a temporary name, renamed over the old one.
func swapCurrent(t *testing.T, root, id string) {
	t.Helper()
	tmp := filepath.Join(root, ".current.tmp")
	os.Remove(tmp)
	if err := os.Symlink(filepath.Join("releases", id), tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(root, "current")); err != nil {
		t.Fatal(err)
	}
}

// waitProgress waits until the load has made more requests than after,
// so every state a test sets up is seen by some request; it gives up
// after 5s.
func waitProgress(l *Load, after int) int {
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		if n, _ := l.Progress(); n > after {
			return n
		}
		time.Sleep(100 * time.Microsecond)
	}
	n, _ := l.Progress()
	return n
}

// waitVersion waits until a visit of version has passed, for at most 5s.
func waitVersion(c *FrontendChecker, version string) {
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		if slices.Contains(c.Versions(), version) {
			return
		}
		time.Sleep(time.Millisecond)
	}
}

// waitFailure waits until the load has seen a failure, for at most 10s.
func waitFailure(l *Load) {
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		if _, f := l.Progress(); f > 0 {
			return
		}
		time.Sleep(time.Millisecond)
	}
}

func get(t *testing.T, url string) (*http.Response, string) {
	t.Helper()
	client := loopbackClient(1)
	defer client.CloseIdleConnections()
	resp, err := client.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

func TestNginxServesFilesAndProxies(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "backend %s", r.URL.Path)
	}))
	defer backend.Close()
	docroot := t.TempDir()
	writeFiles(t, docroot, map[string]string{"index.html": "<p>hello</p>", "assets/app-00000000.js": "x"})
	n := StartNginx(t, docroot, NginxProxy("/api/", backend.URL), NginxProxy("= /healthz", backend.URL))

	resp, body := get(t, n.URL+"/")
	if resp.StatusCode != 200 || body != "<p>hello</p>" || !strings.HasPrefix(resp.Header.Get("Server"), "nginx") {
		t.Fatalf("GET /: %d %q server %q", resp.StatusCode, body, resp.Header.Get("Server"))
	}
	if resp.Header.Get("ETag") == "" || resp.Header.Get("Content-Type") != "text/html" {
		t.Errorf("GET /: headers %v, want an ETag and text/html", resp.Header)
	}
	if resp, _ := get(t, n.URL+"/assets/app-00000000.js"); !strings.Contains(resp.Header.Get("Cache-Control"), "immutable") {
		t.Errorf("asset Cache-Control %q, want immutable", resp.Header.Get("Cache-Control"))
	}
	for path, want := range map[string]string{"/api/menu": "backend /api/menu", "/healthz": "backend /healthz"} {
		if resp, body := get(t, n.URL+path); resp.StatusCode != 200 || body != want {
			t.Errorf("GET %s: %d %q, want %q", path, resp.StatusCode, body, want)
		}
	}
	if resp, _ := get(t, n.URL+"/missing"); resp.StatusCode != 404 {
		t.Errorf("GET /missing: %d, want 404", resp.StatusCode)
	}

	if err := n.Reload(); err != nil {
		t.Fatal(err)
	}
	if resp, _ := get(t, n.URL+"/"); resp.StatusCode != 200 {
		t.Errorf("after reload GET /: %d", resp.StatusCode)
	}
	if err := os.WriteFile(n.ConfigFile, []byte("not a config"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := n.Reload(); err == nil || !strings.Contains(err.Error(), "emerg") {
		t.Errorf("reload of a broken config: %v, want the nginx error", err)
	}
	if resp, _ := get(t, n.URL+"/"); resp.StatusCode != 200 {
		t.Errorf("after failed reload GET /: %d, want the old config still serving", resp.StatusCode)
	}
	if !strings.Contains(n.AccessLog(), "GET /api/menu") || !strings.Contains(n.ErrorLog(), "start worker processes") {
		t.Errorf("logs not written:\n%s\n%s", n.AccessLog(), n.ErrorLog())
	}
	n.Stop()
	if _, err := loopbackClient(1).Get(n.URL + "/"); err == nil {
		t.Error("nginx still answers after Stop")
	}
}

func TestStartNginxRefusesOtherUpstreams(t *testing.T) {
	for _, up := range []string{"http://10.0.0.1:80", "http://127.0.0.1:80/api/", "http://127.0.0.1", "https://127.0.0.1:443"} {
		if err := checkUpstream(up); err == nil {
			t.Errorf("checkUpstream(%q) accepted", up)
		}
	}
	if err := checkUpstream("http://127.0.0.1:8080"); err != nil {
		t.Error(err)
	}
}

// TestNginxSwapUnderLoad is the property deploys rely on: swapping the
// current symlink by rename while nginx serves through it drops no request
// and never mixes releases.
func TestNginxSwapUnderLoad(t *testing.T) {
	for _, sendfile := range []bool{true, false} {
		t.Run(fmt.Sprintf("sendfile=%v", sendfile), func(t *testing.T) {
			root := t.TempDir()
			a := writeRelease(t, root, "a", "v1")
			b := writeRelease(t, root, "b", "v2")
			carryAssets(t, root, a, b)
			carryAssets(t, root, b, a)
			swapCurrent(t, root, "a")
			n := StartNginx(t, filepath.Join(root, "current", "frontend"), NginxSendfile(sendfile))

			checker := &FrontendChecker{Remember: true}
			load := StartLoad(context.Background(), LoadConfig{BaseURL: n.URL, Visit: checker.Visit, MaxDuration: time.Minute})
			seen := waitProgress(load, 0)
			const swaps = 300
			for i := range swaps {
				swapCurrent(t, root, []string{"b", "a"}[i%2])
				seen = waitProgress(load, seen+2)
			}
			report := load.Stop()
			t.Logf("%d swaps: %s", swaps, report)
			if report.Failures != 0 {
				t.Errorf("%d failed visits during swaps:\n%s\nnginx error log:\n%s", report.Failures, report, n.ErrorLog())
			}
			if report.ByVersion["v1"] == 0 || report.ByVersion["v2"] == 0 {
				t.Errorf("versions seen %v, want both v1 and v2", report.ByVersion)
			}
			if report.Requests < swaps {
				t.Errorf("%d requests for %d swaps", report.Requests, swaps)
			}
			// current is on a again: the assets of v2's page are still served.
			if err := FetchAll(context.Background(), n.URL, checker.Assets("v2")); err != nil {
				t.Error(err)
			}
			if v, assets, err := FrontendAssets(context.Background(), n.URL); err != nil || v != "v1" || len(assets) != 2 {
				t.Errorf("FrontendAssets = %s %v %v, want v1 and its 2 assets", v, assets, err)
			}
		})
	}
}

// TestNginxLoadCatchesMissingAsset proves the check can fail: a release
// whose page names an asset it does not have is reported.
func TestNginxLoadCatchesMissingAsset(t *testing.T) {
	root := t.TempDir()
	a := writeRelease(t, root, "a", "v1")
	broken := writeRelease(t, root, "broken", "v3")
	if err := os.Remove(filepath.Join(root, "releases", "broken", "frontend", broken.assets[1])); err != nil {
		t.Fatal(err)
	}
	// Visits of a that straddle the swap pass: only v3 can fail.
	carryAssets(t, root, a, broken)
	swapCurrent(t, root, "a")
	n := StartNginx(t, filepath.Join(root, "current", "frontend"))

	load := StartLoad(context.Background(), LoadConfig{BaseURL: n.URL, Visit: (&FrontendChecker{}).Visit, MaxDuration: time.Minute})
	waitProgress(load, 0)
	swapCurrent(t, root, "broken")
	waitFailure(load)
	report := load.Stop()
	if report.Failures == 0 {
		t.Fatalf("no failures with a missing asset: %s", report)
	}
	if s := report.FailureSamples[0]; !strings.Contains(s, "version v3") || !strings.Contains(s, broken.assets[1]) || !strings.Contains(s, "status 404") {
		t.Errorf("failure %q, want version v3, the asset and status 404", s)
	}
	if len(report.FailureSamples) > maxFailureSamples {
		t.Errorf("%d failure samples, want at most %d", len(report.FailureSamples), maxFailureSamples)
	}
}

// TestNginxLoadCatchesDroppedOldAssets proves the remembered assets are
// checked: a release that does not keep the previous release's assets
// breaks pages loaded before the swap, and that is reported.
func TestNginxLoadCatchesDroppedOldAssets(t *testing.T) {
	root := t.TempDir()
	a := writeRelease(t, root, "a", "v1")
	writeRelease(t, root, "b", "v2")
	swapCurrent(t, root, "a")
	n := StartNginx(t, filepath.Join(root, "current", "frontend"))
	ctx := context.Background()
	_, before, err := FrontendAssets(ctx, n.URL)
	if err != nil {
		t.Fatal(err)
	}

	checker := &FrontendChecker{Remember: true}
	load := StartLoad(ctx, LoadConfig{BaseURL: n.URL, Visit: checker.Visit, MaxDuration: time.Minute})
	waitVersion(checker, "v1")
	swapCurrent(t, root, "b")
	waitFailure(load)
	report := load.Stop()
	// Mostly a later visit of v2 finds v1's assets gone; a visit of v1
	// that straddled the swap finds the same.
	if s := strings.Join(report.FailureSamples, "\n"); report.Failures == 0 || !strings.Contains(s, "v1") || !strings.Contains(s, "status 404") {
		t.Fatalf("dropped assets of v1 not reported: %s", report)
	}
	if err := FetchAll(ctx, n.URL, before); err == nil || !strings.Contains(err.Error(), a.assets[0]) {
		t.Errorf("FetchAll of v1's assets after the swap: %v, want a 404 for %s", err, a.assets[0])
	}
}

// TestNginxLoadCatchesNonAtomicSwap proves the load sees downtime: a
// deploy that removes current and then links it again leaves a moment
// with no release, here held until a request falls into it.
func TestNginxLoadCatchesNonAtomicSwap(t *testing.T) {
	root := t.TempDir()
	a := writeRelease(t, root, "a", "v1")
	b := writeRelease(t, root, "b", "v2")
	carryAssets(t, root, a, b)
	carryAssets(t, root, b, a)
	swapCurrent(t, root, "a")
	n := StartNginx(t, filepath.Join(root, "current", "frontend"))

	load := StartLoad(context.Background(), LoadConfig{BaseURL: n.URL, Visit: (&FrontendChecker{}).Visit, MaxDuration: time.Minute})
	waitProgress(load, 0)
	current := filepath.Join(root, "current")
	for i := range 10 {
		if err := os.Remove(current); err != nil {
			t.Fatal(err)
		}
		// A request is counted before it is sent: the next one counted
		// reaches nginx while current is missing.
		before, _ := load.Progress()
		waitProgress(load, before)
		if err := os.Symlink(filepath.Join("releases", []string{"b", "a"}[i%2]), current); err != nil {
			t.Fatal(err)
		}
	}
	report := load.Stop()
	if report.Failures == 0 || !strings.Contains(strings.Join(report.FailureSamples, "\n"), "status 404") {
		t.Fatalf("a missing current was not reported: %s", report)
	}
}
