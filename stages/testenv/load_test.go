package testenv

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// waitDone fails the test unless the load ends by itself within 30s.
func waitDone(t *testing.T, l *Load) LoadReport {
	t.Helper()
	select {
	case <-l.Done():
	case <-time.After(30 * time.Second):
		t.Fatal("load did not stop at its bound")
	}
	return l.Stop()
}

// countingServer answers every request with "ok" and counts them.
func countingServer(t *testing.T) (*httptest.Server, *atomic.Int64) {
	var hits atomic.Int64
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		fmt.Fprint(w, "ok")
	}))
	t.Cleanup(s.Close)
	return s, &hits
}

func TestLoadStopsAtMaxRequests(t *testing.T) {
	s, hits := countingServer(t)
	l := StartLoad(context.Background(), LoadConfig{
		BaseURL:     s.URL,
		Workers:     4,
		Paths:       func() []string { return []string{"/a", "/b", "/c"} },
		MaxRequests: 100,
	})
	r := waitDone(t, l)
	if r.Requests != 100 || hits.Load() != 100 {
		t.Errorf("made %d requests, server saw %d, want 100", r.Requests, hits.Load())
	}
	if r.Failures != 0 {
		t.Errorf("failures: %s", r)
	}
}

func TestLoadStopsAtMaxDuration(t *testing.T) {
	s, hits := countingServer(t)
	l := StartLoad(context.Background(), LoadConfig{
		BaseURL:     s.URL,
		Paths:       func() []string { return []string{"/"} },
		MaxRequests: 1 << 30,
		MaxDuration: 200 * time.Millisecond,
	})
	r := waitDone(t, l)
	if r.Duration < 200*time.Millisecond {
		t.Errorf("ran %s, want at least MaxDuration", r.Duration)
	}
	// Requests the bound interrupted may or may not have reached the server.
	if r.Requests == 0 || hits.Load() > int64(r.Requests) || r.Failures != 0 {
		t.Errorf("report %s, server saw %d", r, hits.Load())
	}
}

func TestLoadStopsWithItsContext(t *testing.T) {
	s, _ := countingServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	l := StartLoad(ctx, LoadConfig{BaseURL: s.URL, Paths: func() []string { return []string{"/"} }})
	waitProgress(l, 10)
	cancel()
	waitDone(t, l)
}

// Requests that Stop interrupts are not failures.
func TestLoadStopInterruptsWithoutFailures(t *testing.T) {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	}))
	defer s.Close()
	l := StartLoad(context.Background(), LoadConfig{BaseURL: s.URL, Visit: (&FrontendChecker{}).Visit})
	waitProgress(l, 3)
	r := l.Stop()
	if r.Failures != 0 || r.Requests != 4 {
		t.Errorf("report %s, want 4 interrupted requests and no failures", r)
	}
}

func TestLoadChecksAndCountsVersions(t *testing.T) {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1", "/v2":
			fmt.Fprint(w, "version "+r.URL.Path[1:])
		default:
			http.NotFound(w, r)
		}
	}))
	defer s.Close()
	l := StartLoad(context.Background(), LoadConfig{
		BaseURL: s.URL,
		Workers: 1, // one worker ends on a whole round: exact counts
		Paths:   func() []string { return []string{"/v1", "/v2", "/gone"} },
		Version: func(path string, body []byte) string { return strings.TrimPrefix(string(body), "version ") },
		Check: func(path string, status int, body []byte) error {
			if status != 200 {
				return fmt.Errorf("not found")
			}
			return nil
		},
		MaxRequests: 300,
	})
	r := waitDone(t, l)
	if r.Requests != 300 || r.Failures != 100 || r.ByVersion["v1"] != 100 || r.ByVersion["v2"] != 100 || r.Rounds != 100 {
		t.Errorf("report %s, want 300 requests, 100 rounds, 100 failures, 100 of each version", r)
	}
	if len(r.FailureSamples) != maxFailureSamples || r.FailureSamples[0] != "GET /gone: status 404: not found" {
		t.Errorf("samples %q", r.FailureSamples)
	}
}

// A server that cannot be reached fails every round.
func TestLoadCountsTransportErrors(t *testing.T) {
	s, _ := countingServer(t)
	url := s.URL
	s.Close()
	r := waitDone(t, StartLoad(context.Background(), LoadConfig{
		BaseURL: url, Visit: (&FrontendChecker{}).Visit, MaxRequests: 20,
	}))
	if r.Failures != 20 || !strings.Contains(r.FailureSamples[0], "connection refused") {
		t.Errorf("report %s, want 20 refused visits", r)
	}
}

func TestStartLoadRefusesBadConfig(t *testing.T) {
	paths := func() []string { return []string{"/"} }
	for _, cfg := range []LoadConfig{
		{BaseURL: "http://192.0.2.1:80", Paths: paths},
		{BaseURL: "https://127.0.0.1:443", Paths: paths},
		{BaseURL: "http://127.0.0.1:80"},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("StartLoad(%+v) did not refuse", cfg)
				}
			}()
			StartLoad(context.Background(), cfg).Stop()
		}()
	}
	if err := FetchAll(context.Background(), "http://192.0.2.1:80", []string{"/"}); err == nil {
		t.Error("FetchAll reached for a non-loopback address")
	}
}

func hashed(name, ext, content string) string {
	sum := sha256.Sum256([]byte(content))
	return fmt.Sprintf("assets/%s-%s.%s", name, hex.EncodeToString(sum[:4]), ext)
}

func TestParseIndex(t *testing.T) {
	page := indexPage("v1", "assets/index-1.css", "assets/index-2.js")
	for _, tc := range []struct {
		name, page, version, err string
		assets                   []string
	}{
		{name: "whole", page: page, version: "v1", assets: []string{"assets/index-1.css", "assets/index-2.js"}},
		{name: "truncated", page: page[:len(page)-20], err: "does not end with </html>"},
		{name: "two versions", page: strings.Replace(page, `frontend-version">v1`, `frontend-version">v2`, 1), err: "names versions v1 and v2"},
		{name: "no version", page: strings.Replace(page, `name="version"`, `name="x"`, 1), err: "found 0"},
		{name: "empty version", page: strings.Replace(page, `content="v1"`, `content=""`, 1), err: "empty version"},
		{name: "no script", page: strings.Replace(page, `assets/index-2.js`, `app.js`, 1), err: "no assets/*.js"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, assets, err := ParseIndex([]byte(tc.page))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || v != tc.version || strings.Join(assets, " ") != strings.Join(tc.assets, " ") {
				t.Fatalf("got %s %v %v", v, assets, err)
			}
		})
	}
}

func TestCheckAsset(t *testing.T) {
	js := `const BUILD_VERSION = "v1";` + "\n"
	css := "body{}"
	for _, tc := range []struct {
		name, path, body, version, err string
	}{
		{name: "script", path: hashed("index", "js", js), body: js, version: "v1"},
		{name: "stylesheet", path: hashed("index", "css", css), body: css, version: "v1"},
		{name: "unhashed name", path: "assets/logo.svg", body: "<svg/>", version: "v1"},
		{name: "other version", path: hashed("index", "js", js), body: js, version: "v2", err: "embeds version v1, the page is v2"},
		{name: "torn", path: hashed("index", "js", js), body: js[:10], version: "v1", err: "does not match its name"},
		{name: "empty", path: "assets/logo.svg", body: "", version: "v1", err: "is empty"},
		{name: "no version", path: hashed("index", "js", "x"), body: "x", version: "v1", err: "embeds no BUILD_VERSION"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckAsset(tc.path, []byte(tc.body), tc.version)
			if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
				t.Fatalf("err %v, want %q", err, tc.err)
			}
		})
	}
}

// serveFiles serves a directory that a test may replace wholesale, as
// http.FileServer over a fixed path would not see.
func serveFiles(t *testing.T, dir *atomic.Pointer[string]) *httptest.Server {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.FileServer(http.Dir(*dir.Load())).ServeHTTP(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

func TestFrontendCheckerRemembersVersions(t *testing.T) {
	root := t.TempDir()
	a := writeRelease(t, root, "a", "v1")
	b := writeRelease(t, root, "b", "v2")
	carryAssets(t, root, a, b)
	var dir atomic.Pointer[string]
	docA, docB := filepath.Join(root, "releases/a/frontend"), filepath.Join(root, "releases/b/frontend")
	dir.Store(&docA)
	s := serveFiles(t, &dir)

	c := &FrontendChecker{Remember: true}
	var requests []string
	fetch := func(path string) (int, []byte, error) {
		requests = append(requests, path)
		return getPath(context.Background(), loopbackClient(1), mustURL(t, s.URL), path)
	}
	if v, err := c.Visit(fetch); v != "v1" || err != nil {
		t.Fatalf("visit a: %s %v", v, err)
	}
	dir.Store(&docB)
	requests = nil
	if v, err := c.Visit(fetch); v != "v2" || err != nil {
		t.Fatalf("visit b: %s %v", v, err)
	}
	want := append(append([]string{"/"}, abs(b.assets)...), abs(a.assets)...)
	if strings.Join(requests, " ") != strings.Join(want, " ") {
		t.Errorf("visit of b requested %v, want the page, its assets, then a's", requests)
	}
	if strings.Join(c.Versions(), " ") != "v1 v2" || strings.Join(c.Assets("v1"), " ") != strings.Join(abs(a.assets), " ") {
		t.Errorf("versions %v, v1 assets %v", c.Versions(), c.Assets("v1"))
	}

	// Another build under the same version is caught: this page passes
	// every other check, as a's stylesheet carries no version.
	writeFiles(t, docB, map[string]string{"index.html": indexPage("v2", a.assets[0], b.assets[1])})
	if _, err := c.Visit(fetch); err == nil || !strings.Contains(err.Error(), "version v2 names assets") {
		t.Errorf("visit of a second v2 build: %v", err)
	}
}

func abs(paths []string) []string {
	out := make([]string, len(paths))
	for i, p := range paths {
		out[i] = "/" + p
	}
	return out
}

func mustURL(t *testing.T, raw string) *url.URL {
	u, err := loopbackURL(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// TestFrontendCheckerOnExampleBuild runs the example frontend's real build
// and checks its output passes, so the checker matches what deploys ship.
func TestFrontendCheckerOnExampleBuild(t *testing.T) {
	node := RequireTool(t, "node", "apt-get install -y nodejs")
	out := t.TempDir()
	cmd := exec.Command(node, "build.mjs")
	cmd.Dir = filepath.Join("..", "..", "examples", "restaurant", "frontend")
	cmd.Env = append(os.Environ(), "BUILD_OUT="+out, "BUILD_VERSION=20260101T000000Z-abc1234")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build the example frontend: %v\n%s", err, b)
	}
	var dir atomic.Pointer[string]
	dir.Store(&out)
	s := serveFiles(t, &dir)
	l := StartLoad(context.Background(), LoadConfig{BaseURL: s.URL, Visit: (&FrontendChecker{}).Visit, Workers: 1, MaxRequests: 50})
	r := waitDone(t, l)
	if r.Failures != 0 || r.ByVersion["20260101T000000Z-abc1234"] == 0 {
		t.Fatalf("example build: %s", r)
	}
	v, assets, err := FrontendAssets(context.Background(), s.URL)
	if err != nil || v != "20260101T000000Z-abc1234" || len(assets) < 2 {
		t.Fatalf("FrontendAssets: %s %v %v", v, assets, err)
	}
	if err := FetchAll(context.Background(), s.URL, assets); err != nil {
		t.Fatal(err)
	}
}

// A round that makes no request still ends: rounds are bounded as well.
func TestLoadBoundsEmptyRounds(t *testing.T) {
	r := waitDone(t, StartLoad(context.Background(), LoadConfig{
		BaseURL: "http://127.0.0.1:1", Paths: func() []string { return nil }, Workers: 2, MaxRequests: 1000,
	}))
	if r.Requests != 0 || r.Rounds != 2000 {
		t.Errorf("report %s, want 2000 empty rounds", r)
	}
}
