// Package sdk is what a Stagecoach plugin is written with. A plugin is a
// program whose main calls Serve with a Stage; Stagecoach starts it at the
// hook points it is configured for and calls Run with the deploy context and
// a Host through which it runs commands on the deploy target over
// Stagecoach's own connection, so the plugin needs no credentials.
//
//	func main() { sdk.Serve(hello{}) }
package sdk

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/stagecoach/stagecoach/plugins/internal/wire"
	"github.com/stagecoach/stagecoach/plugins/proto"
	"github.com/stagecoach/stagecoach/plugins/sdk/internal/link"
)

func init() {
	link.SetConfig = func(req any, config []byte) { req.(*Request).config = config }
}

// Stage is a custom deploy step.
type Stage interface {
	// Describe names the plugin and the hook points it supports.
	Describe() Info
	// Run performs the step. The returned message goes into the deploy
	// report; an error fails the hook (before the swap the deploy is
	// aborted, after it the release is rolled back). At the notification
	// hook points (on-success, on-failure, after-rollback) an error is
	// only a warning: the deploy's outcome stands.
	Run(ctx context.Context, req Request, host Host) (string, error)
}

// Info describes a plugin.
type Info struct {
	Name    string
	Version string
	// Hooks are the hook points the plugin may be configured at, such as
	// "before-swap", "after-swap" or "on-failure"; "*" or an empty list
	// means any.
	Hooks []string
}

// Request is the deploy context of one Run.
type Request struct {
	Hook        string   // e.g. "after-swap"
	Environment string   // environment name from stagecoach.yml
	Host        string   // target, e.g. "deploy@web1:22" or "local"
	Release     string   // release id
	ReleasePath string   // absolute path of the release on the target
	Root        string   // deploy root on the target
	Revision    string   // commit being deployed
	Previous    string   // commit of the last successful deploy; empty on the first
	Changed     []string // components changed since Previous

	// Outcome is how the deploy ended. It is set only at the notification
	// hook points on-success, on-failure and after-rollback, which run
	// once per deploy on the machine running Stagecoach: there Host and
	// ReleasePath are empty, and Host.Exec and Host.ReadFile fail.
	Outcome *Outcome

	config []byte
}

// Outcome is how a deploy ended.
type Outcome struct {
	// Result is success or no-change (at on-success), else failed,
	// interrupted, rolled-back or rollback-failed.
	Result   string
	Stage    string // the stage that failed, e.g. "health"; empty on success
	Cause    string // the error, with the deploy's secrets masked
	Duration time.Duration
	Hosts    []HostOutcome
}

// HostOutcome is one host's share of the deploy.
type HostOutcome struct {
	Host     string // as configured, e.g. "deploy@web1:22"
	Before   string // release live before the deploy; empty before the first
	After    string // release live now
	Switched bool   // current was switched to the new release (it may have been rolled back since)
	Migrated bool   // migrations ran
}

// Config decodes the plugin's own config block from stagecoach.yml into v
// (a pointer to a struct with json tags). A missing block leaves v as is.
func (r Request) Config(v any) error {
	if len(r.config) == 0 {
		return nil
	}
	if err := json.Unmarshal(r.config, v); err != nil {
		return fmt.Errorf("decode plugin config: %w", err)
	}
	return nil
}

// Host is what Stagecoach offers a running plugin.
type Host interface {
	// Exec runs shell source with /bin/sh -c on the deploy target. A
	// non-zero exit is reported in ExecResult, not as an error; see
	// ExecResult.Err.
	Exec(ctx context.Context, cmd string) (ExecResult, error)
	// ExecInput is Exec with stdin, e.g. for `cat > file`.
	ExecInput(ctx context.Context, cmd string, stdin []byte) (ExecResult, error)
	// ReadFile returns a file's content from the deploy target.
	ReadFile(ctx context.Context, path string) ([]byte, error)
	// Logf writes a line into Stagecoach's log and the deploy report, at
	// info level.
	Logf(format string, args ...any)
	// Debugf logs at debug level: shown with -v only, in the report.
	Debugf(format string, args ...any)
	// Warnf logs a warning; it does not fail the step.
	Warnf(format string, args ...any)
	// Errorf logs at error level; it does not fail the step either
	// (return an error from Run for that).
	Errorf(format string, args ...any)
}

// Log levels, as the protocol's LogRequest carries them.
const (
	LevelDebug = "debug"
	LevelInfo  = "info"
	LevelWarn  = "warn"
	LevelError = "error"
)

// ExecResult is what a command on the target produced.
type ExecResult struct {
	ExitCode int
	Stdout   []byte
	Stderr   []byte
}

// Err is nil when the command exited 0, else an error with the exit status
// and the end of its stderr.
func (r ExecResult) Err() error {
	if r.ExitCode == 0 {
		return nil
	}
	msg := fmt.Sprintf("exit status %d", r.ExitCode)
	if s := strings.TrimSpace(string(r.Stderr)); s != "" {
		if lines := strings.Split(s, "\n"); len(lines) > 5 {
			s = strings.Join(lines[len(lines)-5:], "\n")
		}
		msg += ": " + s
	}
	return fmt.Errorf("%s", msg)
}

// Quote returns s quoted for /bin/sh as one word, for building commands
// from paths and values: host.Exec(ctx, "ls "+sdk.Quote(req.ReleasePath)).
func Quote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// Serve runs the plugin until Stagecoach stops it. Call it from main. Run
// by hand, outside Stagecoach, it prints a short explanation and exits 1.
func Serve(impl Stage) {
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: wire.Handshake,
		Plugins: plugin.PluginSet{
			wire.StageName: &wire.StagePlugin{NewServer: func(b *plugin.GRPCBroker) proto.StageServer {
				return &stageServer{impl: impl, broker: b}
			}},
		},
		GRPCServer: plugin.DefaultGRPCServer,
	})
}

// stageServer serves the Stage service over the plugin's Stage.
type stageServer struct {
	proto.UnimplementedStageServer
	impl   Stage
	broker *plugin.GRPCBroker
}

func (s *stageServer) Describe(context.Context, *proto.DescribeRequest) (*proto.DescribeResponse, error) {
	info := s.impl.Describe()
	return &proto.DescribeResponse{Name: info.Name, Version: info.Version, Hooks: info.Hooks}, nil
}

func (s *stageServer) Run(ctx context.Context, in *proto.RunRequest) (*proto.RunResponse, error) {
	req := Request{
		Hook: in.Hook, Environment: in.Environment, Host: in.Host,
		Release: in.ReleaseId, ReleasePath: in.ReleasePath, Root: in.Root,
		Revision: in.Revision, Previous: in.PreviousRevision,
		Changed: in.ChangedComponents, config: in.ConfigJson,
		Outcome: outcomeFrom(in.Outcome),
	}
	h := &hostClient{broker: s.broker, id: in.HostServiceId}
	defer h.close()
	msg, err := s.impl.Run(ctx, req, h)
	if err != nil {
		// Aborted tells the host this is the plugin's own failure, not a
		// broken connection.
		return nil, status.Error(codes.Aborted, err.Error())
	}
	return &proto.RunResponse{Message: msg}, nil
}

func outcomeFrom(o *proto.Outcome) *Outcome {
	if o == nil {
		return nil
	}
	out := &Outcome{Result: o.Result, Stage: o.Stage, Cause: o.Cause, Duration: time.Duration(o.DurationMs) * time.Millisecond}
	for _, h := range o.Hosts {
		out.Hosts = append(out.Hosts, HostOutcome{Host: h.Host, Before: h.ReleaseBefore, After: h.ReleaseAfter,
			Switched: h.Switched, Migrated: h.Migrated})
	}
	return out
}

// hostClient reaches the host's Host service. It dials on first use, so a
// plugin that never calls the host costs no extra connection.
type hostClient struct {
	broker *plugin.GRPCBroker
	id     uint32

	mu     sync.Mutex
	conn   *grpc.ClientConn
	client proto.HostClient
	err    error
}

func (h *hostClient) dial() (proto.HostClient, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.client == nil && h.err == nil {
		h.conn, h.err = h.broker.Dial(h.id)
		if h.err != nil {
			h.err = fmt.Errorf("connect to the Stagecoach host service: %w", h.err)
		} else {
			h.client = proto.NewHostClient(h.conn)
		}
	}
	return h.client, h.err
}

func (h *hostClient) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.conn != nil {
		h.conn.Close()
	}
}

func (h *hostClient) Exec(ctx context.Context, cmd string) (ExecResult, error) {
	return h.ExecInput(ctx, cmd, nil)
}

func (h *hostClient) ExecInput(ctx context.Context, cmd string, stdin []byte) (ExecResult, error) {
	c, err := h.dial()
	if err != nil {
		return ExecResult{}, err
	}
	resp, err := c.Exec(ctx, &proto.ExecRequest{Cmd: cmd, Stdin: stdin})
	if err != nil {
		return ExecResult{}, fmt.Errorf("exec on target: %s", status.Convert(err).Message())
	}
	return ExecResult{ExitCode: int(resp.ExitCode), Stdout: resp.Stdout, Stderr: resp.Stderr}, nil
}

func (h *hostClient) ReadFile(ctx context.Context, path string) ([]byte, error) {
	c, err := h.dial()
	if err != nil {
		return nil, err
	}
	resp, err := c.ReadFile(ctx, &proto.ReadFileRequest{Path: path})
	if err != nil {
		return nil, fmt.Errorf("read %s on target: %s", path, status.Convert(err).Message())
	}
	return resp.Data, nil
}

func (h *hostClient) Logf(format string, args ...any)   { h.log(LevelInfo, format, args...) }
func (h *hostClient) Debugf(format string, args ...any) { h.log(LevelDebug, format, args...) }
func (h *hostClient) Warnf(format string, args ...any)  { h.log(LevelWarn, format, args...) }
func (h *hostClient) Errorf(format string, args ...any) { h.log(LevelError, format, args...) }

func (h *hostClient) log(level, format string, args ...any) {
	c, err := h.dial()
	if err != nil {
		return
	}
	// Logging must not fail the step; a lost line is reported by the
	// broken connection on the next real call.
	c.Log(context.Background(), &proto.LogRequest{Level: level, Message: fmt.Sprintf(format, args...)})
}
