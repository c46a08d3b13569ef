package testenv

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults and hard limits of the load generator.
const (
	DefaultLoadWorkers     = 4
	DefaultLoadMaxRequests = 200000
	DefaultLoadMaxDuration = 2 * time.Minute

	// loadRequestTimeout bounds one request; a server that hangs is a failure.
	loadRequestTimeout = 10 * time.Second
	// maxBody bounds what one response may hold in memory.
	maxBody = 16 << 20
	// maxFailureSamples is how many failures a report describes.
	maxFailureSamples = 10
)

// errStopped marks requests cut short because the load reached a bound or
// was stopped: they are neither failures nor successes.
var errStopped = errors.New("load stopped")

// Fetch requests one path (such as "/index.html") from the server under
// load and returns the status and the whole body. Every call counts as a
// request of the load; an error means no whole response arrived. One
// visit's Fetch is for that visit's goroutine only.
type Fetch func(path string) (status int, body []byte, err error)

// LoadConfig says what a load requests, how it judges the responses and
// when it stops. A worker repeats rounds until a bound is reached: a round
// is either one Visit, or one request of each path from Paths in order.
type LoadConfig struct {
	// BaseURL is the server, e.g. "http://127.0.0.1:8080"; it must be a
	// loopback address.
	BaseURL string
	// Workers is how many rounds run at once (DefaultLoadWorkers when 0).
	Workers int

	// Paths gives the paths of the next round (used when Visit is nil).
	Paths func() []string
	// Check decides whether a response of the Paths round is whole and
	// valid; nil accepts status 200 only.
	Check func(path string, status int, body []byte) error
	// Version names the version a valid response belongs to, counted in
	// LoadReport.ByVersion (optional, Paths rounds only).
	Version func(path string, body []byte) string

	// Visit, when set, is the round instead of Paths: a scripted sequence
	// such as a page and then the assets it names, judged as one. It
	// returns the version it saw, counted in LoadReport.ByVersion.
	Visit func(fetch Fetch) (version string, err error)

	// MaxRequests bounds the requests made (DefaultLoadMaxRequests when 0).
	MaxRequests int
	// MaxDuration bounds the time the load runs (DefaultLoadMaxDuration when 0).
	MaxDuration time.Duration
}

// LoadReport is what a load saw.
type LoadReport struct {
	// Requests counts the requests made, answered or not.
	Requests int
	// Rounds counts the finished rounds (visits or passes over Paths).
	Rounds int
	// Failures counts failed requests in Paths rounds, failed visits in
	// Visit rounds; requests cut short by the load's own end are not failures.
	Failures int
	// FailureSamples describe the first failures (at most 10).
	FailureSamples []string
	// ByVersion counts valid responses (Paths) or visits (Visit) per version.
	ByVersion map[string]int
	// Duration is how long the load ran.
	Duration time.Duration
}

func (r LoadReport) String() string {
	s := fmt.Sprintf("%d requests in %d rounds over %s, %d failures, versions %v",
		r.Requests, r.Rounds, r.Duration.Round(time.Millisecond), r.Failures, r.ByVersion)
	for _, f := range r.FailureSamples {
		s += "\n  " + f
	}
	return s
}

// Load is a running load generator. It stops by itself at its bounds or
// when its context ends; Stop ends it and reports.
type Load struct {
	cfg    LoadConfig
	base   *url.URL
	client *http.Client
	cancel context.CancelFunc
	done   chan struct{}
	start  time.Time

	issued   atomic.Int64 // requests begun or refused at the bound
	requests atomic.Int64 // requests made
	failures atomic.Int64

	mu        sync.Mutex
	rounds    int
	samples   []string
	byVersion map[string]int
	end       time.Time
}

// StartLoad starts cfg.Workers workers sending requests to cfg.BaseURL
// until cfg.MaxRequests requests were made, cfg.MaxDuration passed, ctx
// ended or Stop was called. It panics on a configuration that is a
// programming error: a BaseURL that is not http on a loopback address, or
// neither Paths nor Visit set.
func StartLoad(ctx context.Context, cfg LoadConfig) *Load {
	base, err := loopbackURL(cfg.BaseURL)
	if err != nil {
		panic("testenv.StartLoad: " + err.Error())
	}
	if cfg.Visit == nil && cfg.Paths == nil {
		panic("testenv.StartLoad: set LoadConfig.Paths or LoadConfig.Visit")
	}
	if cfg.Workers <= 0 {
		cfg.Workers = DefaultLoadWorkers
	}
	if cfg.MaxRequests <= 0 {
		cfg.MaxRequests = DefaultLoadMaxRequests
	}
	if cfg.MaxDuration <= 0 {
		cfg.MaxDuration = DefaultLoadMaxDuration
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.MaxDuration)
	l := &Load{
		cfg:       cfg,
		base:      base,
		client:    loopbackClient(cfg.Workers),
		cancel:    cancel,
		done:      make(chan struct{}),
		start:     time.Now(),
		byVersion: map[string]int{},
	}
	var wg sync.WaitGroup
	for range cfg.Workers {
		wg.Go(func() { l.work(ctx) })
	}
	go func() {
		wg.Wait()
		l.mu.Lock()
		l.end = time.Now()
		l.mu.Unlock()
		cancel()
		l.client.CloseIdleConnections()
		close(l.done)
	}()
	return l
}

// Done is closed when the load has ended, by itself or by Stop.
func (l *Load) Done() <-chan struct{} { return l.done }

// Progress is the requests made and failures seen so far, for tests that
// wait for the load to be under way before they act.
func (l *Load) Progress() (requests, failures int) {
	return int(l.requests.Load()), int(l.failures.Load())
}

// Stop ends the load, waits for its workers and reports.
func (l *Load) Stop() LoadReport {
	l.cancel()
	<-l.done
	l.mu.Lock()
	defer l.mu.Unlock()
	byVersion := make(map[string]int, len(l.byVersion))
	for v, n := range l.byVersion {
		byVersion[v] = n
	}
	return LoadReport{
		Requests:       int(l.requests.Load()),
		Rounds:         l.rounds,
		Failures:       int(l.failures.Load()),
		FailureSamples: append([]string(nil), l.samples...),
		ByVersion:      byVersion,
		Duration:       l.end.Sub(l.start),
	}
}

// work runs rounds until the context ends or the request bound is reached.
// Rounds are bounded too, in case a round makes no request at all.
func (l *Load) work(ctx context.Context) {
	for round := 0; round < l.cfg.MaxRequests && ctx.Err() == nil && l.issued.Load() < int64(l.cfg.MaxRequests); round++ {
		if l.cfg.Visit != nil {
			l.visit(ctx)
		} else {
			l.pass(ctx)
		}
	}
}

// visit runs one Visit round and records it.
func (l *Load) visit(ctx context.Context) {
	var fetchErr error
	fetch := func(path string) (int, []byte, error) {
		status, body, err := l.get(ctx, path)
		if err != nil && fetchErr == nil {
			fetchErr = err
		}
		return status, body, err
	}
	version, err := l.cfg.Visit(fetch)
	// A visit that swallowed a transport error has still failed.
	if err == nil {
		err = fetchErr
	}
	if errors.Is(err, errStopped) || errors.Is(fetchErr, errStopped) {
		return
	}
	l.record(version, err)
}

// pass requests each path of one Paths round and records each response.
func (l *Load) pass(ctx context.Context) {
	for _, path := range l.cfg.Paths() {
		status, body, err := l.get(ctx, path)
		if errors.Is(err, errStopped) {
			return
		}
		if err == nil {
			err = l.check(path, status, body)
		}
		version := ""
		if err == nil && l.cfg.Version != nil {
			version = l.cfg.Version(path, body)
		}
		if err != nil {
			err = fmt.Errorf("GET %s: status %d: %w", path, status, err)
		}
		l.record(version, err)
	}
	l.mu.Lock()
	l.rounds++
	l.mu.Unlock()
}

func (l *Load) check(path string, status int, body []byte) error {
	if l.cfg.Check != nil {
		return l.cfg.Check(path, status, body)
	}
	if status != http.StatusOK {
		return errors.New("want status 200")
	}
	return nil
}

// record counts one checked response or visit.
func (l *Load) record(version string, err error) {
	if err != nil {
		l.failures.Add(1)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cfg.Visit != nil {
		l.rounds++
	}
	if err != nil {
		if len(l.samples) < maxFailureSamples {
			l.samples = append(l.samples, err.Error())
		}
		return
	}
	if version != "" {
		l.byVersion[version]++
	}
}

// get makes one request within the bounds. It returns errStopped, making no
// request, once the request bound is reached (requests in flight then
// finish and are judged), and for a request the load's end interrupted.
func (l *Load) get(ctx context.Context, path string) (int, []byte, error) {
	if l.issued.Add(1) > int64(l.cfg.MaxRequests) {
		return 0, nil, errStopped
	}
	if ctx.Err() != nil {
		return 0, nil, errStopped
	}
	l.requests.Add(1)
	status, body, err := getPath(ctx, l.client, l.base, path)
	if err != nil && ctx.Err() != nil {
		return 0, nil, errStopped
	}
	return status, body, err
}

// getPath requests path relative to base and reads the whole body.
func getPath(ctx context.Context, client *http.Client, base *url.URL, path string) (int, []byte, error) {
	ref, err := url.Parse(path)
	if err != nil {
		return 0, nil, fmt.Errorf("GET %s: %w", path, err)
	}
	u := base.ResolveReference(ref)
	if u.Host != base.Host {
		return 0, nil, fmt.Errorf("GET %s: leaves %s", path, base.Host)
	}
	ctx, cancel := context.WithTimeout(ctx, loadRequestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return 0, nil, fmt.Errorf("GET %s: %w", path, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("GET %s: %w", path, err)
	}
	defer resp.Body.Close()
	// The client reports a body shorter than its Content-Length as an error,
	// so a torn transfer cannot pass for a short file.
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return resp.StatusCode, nil, fmt.Errorf("GET %s: read body: %w", path, err)
	}
	if len(body) > maxBody {
		return resp.StatusCode, nil, fmt.Errorf("GET %s: body over %d bytes", path, maxBody)
	}
	return resp.StatusCode, body, nil
}

// loopbackClient talks to loopback servers only: no proxy from the
// environment, no redirects followed (a 301 is a response to judge).
func loopbackClient(conns int) *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			Proxy:               nil,
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
			MaxIdleConnsPerHost: conns,
			IdleConnTimeout:     30 * time.Second,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// loopbackURL parses raw and refuses anything but http on a loopback
// address, so a load can never be pointed at another machine.
func loopbackURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("base URL %q: %w", raw, err)
	}
	if u.Scheme != "http" {
		return nil, fmt.Errorf("base URL %q: want http://", raw)
	}
	host := u.Hostname()
	if ip := net.ParseIP(host); (ip == nil || !ip.IsLoopback()) && host != "localhost" {
		return nil, fmt.Errorf("base URL %q: not a loopback address", raw)
	}
	if !strings.HasSuffix(u.Path, "/") {
		u.Path += "/"
	}
	return u, nil
}

// FetchAll requests each path from baseURL (loopback only) and fails unless
// every one is served whole: status 200, not empty, and for content-hashed
// names (name-<8 hex>.ext) a body whose SHA-256 starts with that hash. Use
// it to prove that assets named by a page from before a swap are still
// served after it.
func FetchAll(ctx context.Context, baseURL string, paths []string) error {
	base, err := loopbackURL(baseURL)
	if err != nil {
		return err
	}
	client := loopbackClient(1)
	defer client.CloseIdleConnections()
	var errs []error
	for _, p := range paths {
		status, body, err := getPath(ctx, client, base, p)
		if err == nil {
			err = checkServed(p, status, body)
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// The example frontend's build (examples/restaurant/frontend/build.mjs)
// writes index.html with <meta name="version" content="V"> and the version
// again in the footer, content-hashed assets/<name>-<8 hex>.<ext> whose hash
// is the start of the SHA-256 of their bytes, and a script that embeds
// `const BUILD_VERSION = "V"`.
var (
	metaVersionRE   = regexp.MustCompile(`<meta name="version" content="([^"]*)">`)
	footerVersionRE = regexp.MustCompile(`id="frontend-version">([^<]*)<`)
	assetRefRE      = regexp.MustCompile(`(?:src|href)="(assets/[^"]+)"`)
	hashedNameRE    = regexp.MustCompile(`-([0-9a-f]{8})\.[A-Za-z0-9]+$`)
	scriptVersionRE = regexp.MustCompile(`BUILD_VERSION = "([^"]*)"`)
)

// ParseIndex reads a frontend's index.html: its version and the asset
// paths it names, as written ("assets/index-1a2b3c4d.js"). It fails on a
// page that is not whole: no single version, a footer naming another
// version, a missing </html> end, or no script to tie the assets to the
// version.
func ParseIndex(body []byte) (version string, assets []string, err error) {
	metas := metaVersionRE.FindAllSubmatch(body, -1)
	if len(metas) != 1 {
		return "", nil, fmt.Errorf("want one <meta name=\"version\">, found %d", len(metas))
	}
	version = string(metas[0][1])
	if version == "" {
		return "", nil, errors.New("empty version in <meta name=\"version\">")
	}
	for _, m := range footerVersionRE.FindAllSubmatch(body, -1) {
		if string(m[1]) != version {
			return "", nil, fmt.Errorf("page names versions %s and %s", version, m[1])
		}
	}
	if !bytes.HasSuffix(bytes.TrimSpace(body), []byte("</html>")) {
		return "", nil, fmt.Errorf("version %s: page does not end with </html>", version)
	}
	seen := map[string]bool{}
	script := false
	for _, m := range assetRefRE.FindAllSubmatch(body, -1) {
		a := string(m[1])
		if !seen[a] {
			seen[a] = true
			assets = append(assets, a)
			script = script || strings.HasSuffix(a, ".js")
		}
	}
	if !script {
		return "", nil, fmt.Errorf("version %s: page names no assets/*.js script", version)
	}
	return version, assets, nil
}

// CheckAsset checks that body is the whole asset named path of version:
// not empty, matching the content hash in its name when it has one, and
// for a script, embedding that BUILD_VERSION. Stylesheets and images carry
// no version: their hashed names tie them to the page that names them.
func CheckAsset(path string, body []byte, version string) error {
	if err := checkWhole(path, body); err != nil {
		return err
	}
	if strings.HasSuffix(path, ".js") {
		m := scriptVersionRE.FindSubmatch(body)
		if m == nil {
			return fmt.Errorf("%s embeds no BUILD_VERSION", path)
		}
		if string(m[1]) != version {
			return fmt.Errorf("%s embeds version %s, the page is %s", path, m[1], version)
		}
	}
	return nil
}

// checkServed checks a response to a request for a file that must exist.
func checkServed(path string, status int, body []byte) error {
	if status != http.StatusOK {
		return fmt.Errorf("GET %s: status %d", path, status)
	}
	return checkWhole(path, body)
}

// checkWhole checks that body is not empty and, for a content-hashed name,
// that its SHA-256 starts with the hash in the name.
func checkWhole(path string, body []byte) error {
	if len(body) == 0 {
		return fmt.Errorf("%s is empty", path)
	}
	if m := hashedNameRE.FindStringSubmatch(path); m != nil {
		sum := sha256.Sum256(body)
		if got := hex.EncodeToString(sum[:4]); got != m[1] {
			return fmt.Errorf("%s: content hash %s does not match its name (%d bytes)", path, got, len(body))
		}
	}
	return nil
}

// maxRemembered bounds the versions a FrontendChecker keeps assets of.
const maxRemembered = 8

// FrontendChecker visits the example frontend as a browser would: it loads
// the page, then every asset the page names, and passes only when all of
// them belong to the page's one version (see ParseIndex and CheckAsset).
// Its Visit method is a LoadConfig.Visit. The zero value is ready to use;
// it is safe for concurrent visits.
type FrontendChecker struct {
	// Index is the page's path, "/" when empty.
	Index string
	// Remember makes every visit also request the assets of the other
	// versions seen so far (the latest 8), as a browser holding a page
	// from before a swap would after it.
	Remember bool

	mu       sync.Mutex
	versions []string            // first seen first
	assets   map[string][]string // version -> asset paths, resolved
}

// Visit loads the page and its assets through fetch and returns the
// page's version.
func (c *FrontendChecker) Visit(fetch Fetch) (string, error) {
	index := c.Index
	if index == "" {
		index = "/"
	}
	status, body, err := fetch(index)
	if err != nil {
		return "", err
	}
	if status != http.StatusOK {
		return "", fmt.Errorf("GET %s: status %d", index, status)
	}
	version, refs, err := ParseIndex(body)
	if err != nil {
		return "", fmt.Errorf("GET %s: %w", index, err)
	}
	assets, err := resolvePaths(index, refs)
	if err != nil {
		return "", err
	}
	for _, a := range assets {
		status, body, err := fetch(a)
		if err != nil {
			return version, fmt.Errorf("version %s: %w", version, err)
		}
		if status != http.StatusOK {
			return version, fmt.Errorf("version %s: GET %s: status %d", version, a, status)
		}
		if err := CheckAsset(a, body, version); err != nil {
			return version, fmt.Errorf("version %s: %w", version, err)
		}
	}
	earlier, err := c.remember(version, assets)
	if err != nil {
		return version, err
	}
	if !c.Remember {
		return version, nil
	}
	for _, e := range earlier {
		for _, a := range e.assets {
			status, body, err := fetch(a)
			if err == nil {
				err = checkServed(a, status, body)
			}
			if err != nil {
				return version, fmt.Errorf("asset of earlier version %s no longer served: %w", e.version, err)
			}
		}
	}
	return version, nil
}

// Versions lists the versions visited, first seen first (the latest 8).
func (c *FrontendChecker) Versions() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.versions...)
}

// Assets lists the asset paths the page of version named, or nil when the
// version was not seen (or is no longer remembered).
func (c *FrontendChecker) Assets(version string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.assets[version]...)
}

type versionAssets struct {
	version string
	assets  []string
}

// remember records the assets of version and returns those of the other
// versions. One version naming two asset sets means two different builds
// went out under one version, which no check could then tell apart.
func (c *FrontendChecker) remember(version string, assets []string) ([]versionAssets, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.assets == nil {
		c.assets = map[string][]string{}
	}
	if known, ok := c.assets[version]; ok {
		if !slices.Equal(known, assets) {
			return nil, fmt.Errorf("version %s names assets %v, earlier %v", version, assets, known)
		}
	} else {
		if len(c.versions) == maxRemembered {
			delete(c.assets, c.versions[0])
			c.versions = c.versions[1:]
		}
		c.versions = append(c.versions, version)
		c.assets[version] = assets
	}
	var earlier []versionAssets
	for _, v := range c.versions {
		if v != version {
			earlier = append(earlier, versionAssets{v, c.assets[v]})
		}
	}
	return earlier, nil
}

// resolvePaths turns references relative to the page into absolute paths.
func resolvePaths(page string, refs []string) ([]string, error) {
	base, err := url.Parse(page)
	if err != nil {
		return nil, fmt.Errorf("page path %q: %w", page, err)
	}
	out := make([]string, 0, len(refs))
	for _, r := range refs {
		u, err := url.Parse(r)
		if err != nil {
			return nil, fmt.Errorf("asset reference %q: %w", r, err)
		}
		out = append(out, base.ResolveReference(u).Path)
	}
	return out, nil
}

// FrontendAssets loads the page at "/" from baseURL (loopback only) and
// returns its version and the absolute paths of the assets it names, to
// remember before a deploy and request with FetchAll after it.
func FrontendAssets(ctx context.Context, baseURL string) (version string, assets []string, err error) {
	base, err := loopbackURL(baseURL)
	if err != nil {
		return "", nil, err
	}
	client := loopbackClient(1)
	defer client.CloseIdleConnections()
	status, body, err := getPath(ctx, client, base, "/")
	if err == nil {
		err = checkServed("/", status, body)
	}
	if err != nil {
		return "", nil, err
	}
	version, refs, err := ParseIndex(body)
	if err != nil {
		return "", nil, fmt.Errorf("page at %s: %w", baseURL, err)
	}
	assets, err = resolvePaths("/", refs)
	return version, assets, err
}
