// Package sdktest unit-tests a Stagecoach plugin without Stagecoach: a
// fake Host that records what the plugin asked of the target and answers
// from a script, and NewRequest, a deploy context with the plugin's config.
//
//	func TestNote(t *testing.T) {
//		host := sdktest.NewHost()
//		host.OnExec("cat > ", sdk.ExecResult{}, nil)
//		req := sdktest.NewRequest(map[string]any{"message": "hi"})
//		msg, err := deploynote{}.Run(context.Background(), req, host)
//		...
//		if got := host.Execs()[0].Stdin; ...
//		if got := host.Messages(sdk.LevelWarn); ...
//	}
package sdktest

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"strings"
	"sync"

	"github.com/stagecoach/stagecoach/plugins/sdk"
	"github.com/stagecoach/stagecoach/plugins/sdk/internal/link"
)

// NewRequest returns the deploy context of an after-swap run on host
// "deploy@web1:22", with config (a struct with json tags, a map, raw JSON
// as []byte or json.RawMessage, or nil for none) as the plugin's config
// block: what stagecoach.yml's config: would give it. Change its fields
// for other cases; for a notification hook set Hook and Outcome (and
// clear Host and ReleasePath, as Stagecoach does). It panics when config
// cannot be encoded as JSON.
func NewRequest(config any) sdk.Request {
	req := sdk.Request{
		Hook:        "after-swap",
		Environment: "production",
		Host:        "deploy@web1:22",
		Release:     "20240102T030405Z-abc1234",
		ReleasePath: "/srv/app/releases/20240102T030405Z-abc1234",
		Root:        "/srv/app",
		Revision:    "abc1234def5678",
		Previous:    "0123456789abcd",
		Changed:     []string{"backend", "frontend"},
	}
	var data []byte
	switch c := config.(type) {
	case nil:
	case []byte:
		data = c
	case json.RawMessage:
		data = c
	default:
		var err error
		if data, err = json.Marshal(c); err != nil {
			panic(fmt.Sprintf("sdktest.NewRequest: encode config: %v", err))
		}
	}
	link.SetConfig(&req, data)
	return req
}

// ExecCall is one Exec or ExecInput call.
type ExecCall struct {
	Cmd   string
	Stdin []byte // nil for Exec
}

// LogLine is one line the plugin logged.
type LogLine struct {
	Level   string // sdk.LevelDebug, LevelInfo, LevelWarn or LevelError
	Message string
}

// Host is a fake sdk.Host. Its zero value is not usable; use NewHost.
// It is safe for concurrent use.
type Host struct {
	mu      sync.Mutex
	answers []answer
	files   map[string][]byte
	execs   []ExecCall
	reads   []string
	logs    []LogLine
	noHost  string
}

type answer struct {
	match string
	fn    func(ExecCall) (sdk.ExecResult, error)
}

// NewHost returns a fake host on which every command exits 0 with no
// output and no file exists, until OnExec and AddFile say otherwise.
func NewHost() *Host { return &Host{files: map[string][]byte{}} }

// NoTarget makes Exec and ReadFile fail as they do at the notification
// hook points (on-success, on-failure, after-rollback), where there is no
// deploy target.
func (h *Host) NoTarget(hook string) *Host {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.noHost = hook
	return h
}

// OnExec answers every later command containing match ("" matches all)
// with res and err. Answers are tried newest first, so a specific one
// added after a catch-all wins.
func (h *Host) OnExec(match string, res sdk.ExecResult, err error) *Host {
	return h.OnExecFunc(match, func(ExecCall) (sdk.ExecResult, error) { return res, err })
}

// OnExecFunc is OnExec with an answer computed from the call.
func (h *Host) OnExecFunc(match string, fn func(ExecCall) (sdk.ExecResult, error)) *Host {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.answers = append(h.answers, answer{match, fn})
	return h
}

// AddFile makes ReadFile(path) return data.
func (h *Host) AddFile(path string, data []byte) *Host {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.files[path] = data
	return h
}

func (h *Host) Exec(ctx context.Context, cmd string) (sdk.ExecResult, error) {
	return h.exec(ctx, ExecCall{Cmd: cmd})
}

func (h *Host) ExecInput(ctx context.Context, cmd string, stdin []byte) (sdk.ExecResult, error) {
	if stdin == nil {
		stdin = []byte{}
	}
	return h.exec(ctx, ExecCall{Cmd: cmd, Stdin: stdin})
}

func (h *Host) exec(ctx context.Context, call ExecCall) (sdk.ExecResult, error) {
	h.mu.Lock()
	h.execs = append(h.execs, call)
	noHost := h.noHost
	var fn func(ExecCall) (sdk.ExecResult, error)
	for i := len(h.answers) - 1; i >= 0; i-- {
		if strings.Contains(call.Cmd, h.answers[i].match) {
			fn = h.answers[i].fn
			break
		}
	}
	h.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return sdk.ExecResult{}, err
	}
	if noHost != "" {
		return sdk.ExecResult{}, fmt.Errorf("exec on target: no deploy target at %s", noHost)
	}
	if fn == nil {
		return sdk.ExecResult{}, nil
	}
	return fn(call)
}

func (h *Host) ReadFile(ctx context.Context, path string) ([]byte, error) {
	h.mu.Lock()
	h.reads = append(h.reads, path)
	data, ok := h.files[path]
	noHost := h.noHost
	h.mu.Unlock()
	switch {
	case ctx.Err() != nil:
		return nil, ctx.Err()
	case noHost != "":
		return nil, fmt.Errorf("read %s on target: no deploy target at %s", path, noHost)
	case !ok:
		return nil, fmt.Errorf("read %s on target: %w", path, fs.ErrNotExist)
	}
	return append([]byte(nil), data...), nil
}

func (h *Host) Logf(format string, args ...any)   { h.log(sdk.LevelInfo, format, args...) }
func (h *Host) Debugf(format string, args ...any) { h.log(sdk.LevelDebug, format, args...) }
func (h *Host) Warnf(format string, args ...any)  { h.log(sdk.LevelWarn, format, args...) }
func (h *Host) Errorf(format string, args ...any) { h.log(sdk.LevelError, format, args...) }

func (h *Host) log(level, format string, args ...any) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.logs = append(h.logs, LogLine{Level: level, Message: fmt.Sprintf(format, args...)})
}

// Execs returns the commands run so far, in order.
func (h *Host) Execs() []ExecCall {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]ExecCall(nil), h.execs...)
}

// Reads returns the paths read so far, in order.
func (h *Host) Reads() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.reads...)
}

// Logs returns the lines logged so far, in order.
func (h *Host) Logs() []LogLine {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]LogLine(nil), h.logs...)
}

// Messages returns the messages logged at level, in order.
func (h *Host) Messages(level string) []string {
	var out []string
	for _, l := range h.Logs() {
		if l.Level == level {
			out = append(out, l.Message)
		}
	}
	return out
}

var _ sdk.Host = (*Host)(nil)
