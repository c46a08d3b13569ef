package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stagecoach/stagecoach/stages/testenv"
)

// TestZeroDowntimeDeploy deploys the example app to a real sshd with a real
// nginx serving <root>/current/frontend, then deploys a changed frontend
// while a load of browser-like visits runs for the whole deploy. Every
// visit must be served wholly by one version (the page and every asset it
// names), none may fail, both versions must be seen, and the assets the old
// page named must still be served after the swap.
func TestZeroDowntimeDeploy(t *testing.T) {
	host := testenv.StartSSHD(t)
	p := testenv.NewProject(t, testenv.ProjectOptions{Hosts: []*testenv.Host{host}})
	backend := "http://127.0.0.1:" + strconv.Itoa(p.Port)
	web := testenv.StartNginx(t, filepath.Join(p.Root, "current", "frontend"),
		testenv.NginxProxy("/api/", backend), testenv.NginxProxy("= /healthz", backend))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	first := mustDeploy(t, p)
	firstDone := time.Now()
	id1 := first.run.Plan.Release
	v1, oldAssets, err := testenv.FrontendAssets(ctx, web.URL)
	if err != nil {
		t.Fatalf("first release through nginx: %v\n%s", err, web.ErrorLog())
	}
	if v1 != id1 {
		t.Fatalf("nginx serves version %s, want %s", v1, id1)
	}
	if body := get(t, web.URL+"/healthz", nil).body; !strings.Contains(body, id1) {
		t.Fatalf("/healthz through nginx: %q does not name %s", body, id1)
	}
	oldIndex := get(t, web.URL+"/index.html", nil)

	// A change to the script and the stylesheet: new hashed names, and a
	// page of the same size (the release id has a fixed length).
	p.Write("frontend/src/app.js", readFile(t, filepath.Join(p.Dir, "frontend/src/app.js"))+"\n// zero-downtime change\n")
	p.Write("frontend/src/style.css", readFile(t, filepath.Join(p.Dir, "frontend/src/style.css"))+"\nfooter { opacity: 0.9; }\n")
	p.Commit("change the frontend's script and style")

	checker := &testenv.FrontendChecker{Remember: true}
	load := testenv.StartLoad(ctx, testenv.LoadConfig{
		BaseURL:     web.URL,
		Workers:     4,
		Visit:       checker.Visit,
		MaxDuration: 3 * time.Minute,
	})
	defer load.Stop()
	waitRequests(t, load, 50)

	// nginx's ETag has whole seconds: a page of the same size extracted in
	// the same second as the first would rightly get a 304. Real deploys
	// are never that close; two fast ones here can be.
	time.Sleep(time.Until(firstDone.Truncate(time.Second).Add(time.Second)))
	second := mustDeploy(t, p)
	id2 := second.run.Plan.Release
	// Let the load visit the new release for a while after the swap.
	after, _ := load.Progress()
	waitRequests(t, load, after+200)
	rep := load.Stop()
	t.Logf("load: %s", rep)
	t.Logf("deploy %s: %s", id2, stageDurations(t, p, id2))

	if rep.Failures != 0 {
		t.Errorf("%d failed visits during the deploy:\n%s", rep.Failures, strings.Join(rep.FailureSamples, "\n"))
	}
	if rep.ByVersion[id1] == 0 || rep.ByVersion[id2] == 0 {
		t.Errorf("versions seen %v, want both %s and %s", rep.ByVersion, id1, id2)
	}
	for v := range rep.ByVersion {
		if v != id1 && v != id2 {
			t.Errorf("version %s seen, neither the old %s nor the new %s", v, id1, id2)
		}
	}
	if err := testenv.FetchAll(ctx, web.URL, oldAssets); err != nil {
		t.Errorf("assets of the old page no longer served after the swap: %v", err)
	}
	if v, _, err := testenv.FrontendAssets(ctx, web.URL); err != nil || v != id2 {
		t.Errorf("after the deploy nginx serves version %q (%v), want %s", v, err, id2)
	}

	// A browser revalidating its copy of the old page must get the new one,
	// not a 304: nginx's ETag is made of the file's mtime and size.
	newIndex := get(t, web.URL+"/index.html", map[string]string{"If-None-Match": oldIndex.etag})
	if newIndex.status != http.StatusOK || !strings.Contains(newIndex.body, id2) {
		t.Errorf("revalidating the old index.html (ETag %s, %d bytes) got status %d, ETag %s, want 200 with version %s",
			oldIndex.etag, len(oldIndex.body), newIndex.status, newIndex.etag, id2)
	}
	if body := get(t, web.URL+"/healthz", nil).body; !strings.Contains(body, `"status":"ok"`) {
		t.Errorf("/healthz through nginx after the deploy: %q", body)
	}
}

// waitRequests waits until the load has made n requests.
func waitRequests(t *testing.T, load *testenv.Load, n int) {
	t.Helper()
	deadline := time.After(time.Minute)
	for {
		if got, _ := load.Progress(); got >= n {
			return
		}
		select {
		case <-load.Done():
			t.Fatalf("load ended before %d requests: %s", n, load.Stop())
		case <-deadline:
			got, _ := load.Progress()
			t.Fatalf("load made %d requests in a minute, waiting for %d", got, n)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

type response struct {
	status     int
	etag, body string
}

// get requests url with the given headers.
func get(t *testing.T, url string, header map[string]string) response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return response{status: resp.StatusCode, etag: resp.Header.Get("ETag"), body: string(b)}
}

// stageDurations lists the deploy's stages and how long each took, from
// its JSON report.
func stageDurations(t *testing.T, p *testenv.Project, release string) string {
	t.Helper()
	var parts []string
	for _, st := range report(t, p, release)["stages"].([]any) {
		m := st.(map[string]any)
		parts = append(parts, fmt.Sprintf("%s %s", m["name"], time.Duration(m["duration_ns"].(float64)).Round(time.Millisecond)))
	}
	return strings.Join(parts, ", ")
}
