// Package plugins runs custom deploy stages: separate executables speaking
// hashicorp/go-plugin's gRPC protocol (see plugins/proto), written with
// plugins/sdk. The deploy pipeline calls RunHook at each hook point
// (before-<stage> and after-<stage>); each plugin gets the deploy context and
// a Host service, served through go-plugin's GRPCBroker, that runs commands
// on the target over the pipeline's own remote.Runner. Notify runs the
// notification hook points (on-success, on-failure, after-rollback) once
// per deploy, with its Outcome, and only warns when a plugin fails.
package plugins

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/stagecoach/stagecoach/plugins/internal/wire"
	"github.com/stagecoach/stagecoach/plugins/proto"
	"github.com/stagecoach/stagecoach/stages/archive"
	"github.com/stagecoach/stagecoach/stages/config"
	"github.com/stagecoach/stagecoach/stages/remote"
	"github.com/stagecoach/stagecoach/stages/ui"
)

// Spec is one configured plugin: name, path, hook point, optional SHA-256
// pin, timeout and its own config block.
type Spec = config.Plugin

// Context is the deploy context passed to a plugin.
type Context struct {
	Environment string   // environment name
	Host        string   // target, as remote.Runner.Target reports it
	Release     string   // release id
	ReleasePath string   // absolute path of the release on the target
	Root        string   // deploy root on the target
	Revision    string   // commit being deployed
	Previous    string   // commit of the last successful deploy; empty on the first
	Changed     []string // components changed since Previous

	// Dir is the project root, against which relative plugin paths
	// resolve; empty means the working directory.
	Dir string

	// Outcome is how the deploy ended; set only at the notification hook
	// points (config.NotifyHooks).
	Outcome *Outcome
}

// Outcome is how a deploy ended, for the notification hook points.
type Outcome struct {
	Result   string // success, no-change, failed, interrupted, rolled-back or rollback-failed
	Stage    string // the stage that failed; empty on success
	Cause    string // the error, secrets masked (Notify masks it again with the logger's Redact)
	Duration time.Duration
	Hosts    []HostOutcome
}

// HostOutcome is one host's share of the deploy.
type HostOutcome struct {
	Host     string
	Before   string // release live before the deploy
	After    string // release live now
	Switched bool   // current was switched to the new release (maybe rolled back since)
	Migrated bool
}

// Result is what one plugin run produced, for the deploy report.
type Result struct {
	Plugin   string
	Hook     string
	Message  string   // the plugin's one-line summary
	Logs     []string // lines it logged through the host, "warn: "-style prefixed unless info
	Duration time.Duration
}

// RunHook runs, in config order, the plugins configured at hook, stopping at
// the first failure. It returns the results of the plugins that ran,
// including the failed one.
func RunHook(ctx context.Context, specs []config.Plugin, hook string, dc Context, r remote.Runner, log *ui.Logger) ([]Result, error) {
	var results []Result
	for _, spec := range specs {
		if spec.At != hook {
			continue
		}
		res, err := Run(ctx, spec, dc, r, log)
		results = append(results, res)
		if err != nil {
			return results, err
		}
	}
	return results, nil
}

// Notify runs, in config order, every plugin configured at the
// notification hook point hook (on-success, on-failure, after-rollback),
// once per deploy, with dc.Outcome in its request. There is no deploy
// target at these points: the plugin's Exec and ReadFile fail, Log works.
// A plugin that fails is logged as a warning and the next one still runs;
// the failures are returned for the caller to report, never to fail the
// deploy with. ctx may be cancelled already (an interrupted deploy is
// notified too): each plugin gets its own timeout from a context without
// ctx's cancellation.
func Notify(ctx context.Context, specs []config.Plugin, hook string, dc Context, log *ui.Logger) ([]Result, []error) {
	ctx = context.WithoutCancel(ctx)
	if dc.Outcome != nil {
		o := *dc.Outcome
		o.Cause = log.Redact(o.Cause)
		dc.Outcome = &o
	}
	dc.Host, dc.ReleasePath = "", ""
	var results []Result
	var errs []error
	for _, spec := range specs {
		if spec.At != hook {
			continue
		}
		res, err := Run(ctx, spec, dc, nil, log)
		results = append(results, res)
		if err != nil {
			err = fmt.Errorf("%s (a notification: the deploy's outcome stands)", log.Redact(err.Error()))
			log.Warnf("%v", err)
			errs = append(errs, err)
		}
	}
	return results, errs
}

// Run starts the plugin spec at its hook point spec.At, checks that it
// supports that hook, runs it with the deploy context and a Host service
// over r, and stops it. The process is gone (killed if need be, and reaped)
// when Run returns, whatever happened. spec.Timeout (default 60s) bounds
// the whole run including start-up.
func Run(ctx context.Context, spec config.Plugin, dc Context, r remote.Runner, log *ui.Logger) (Result, error) {
	start := time.Now()
	res := Result{Plugin: spec.Name, Hook: spec.At}
	plog := log.With("plugin " + spec.Name)
	h := &hostService{r: r, log: plog, name: spec.Name, hook: spec.At}
	err := run(ctx, spec, dc, h, &res)
	res.Logs = h.lines()
	res.Duration = time.Since(start)
	if err != nil {
		return res, err
	}
	plog.Debugf("%s done in %s: %s", spec.At, ui.Round(res.Duration), res.Message)
	return res, nil
}

func run(ctx context.Context, spec config.Plugin, dc Context, h *hostService, res *Result) error {
	path, err := checkExecutable(spec, dc.Dir)
	if err != nil {
		return err
	}
	var secure *plugin.SecureConfig
	if spec.SHA256 != "" {
		sum, err := hex.DecodeString(spec.SHA256)
		if err != nil || len(sum) != sha256.Size {
			return fmt.Errorf("plugin %s: sha256 %q is not 64 hex digits", spec.Name, spec.SHA256)
		}
		secure = &plugin.SecureConfig{Checksum: sum, Hash: sha256.New()}
	}
	var cfgJSON []byte
	if spec.Config != nil {
		if cfgJSON, err = json.Marshal(spec.Config); err != nil {
			return fmt.Errorf("plugin %s: encode its config as JSON: %w", spec.Name, err)
		}
	}

	// config.Load gives every plugin its timeout.
	tctx, cancel := context.WithTimeout(ctx, spec.Timeout)
	defer cancel()
	h.ctx = tctx

	// The command is tied to the timeout so the process is killed in any
	// phase, start-up included, which go-plugin's own timeouts do not cover.
	cmd := exec.CommandContext(tctx, path)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 2 * time.Second
	stderr := &tailBuffer{max: 4096}
	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  wire.Handshake,
		Plugins:          plugin.PluginSet{wire.StageName: &wire.StagePlugin{}},
		Cmd:              cmd,
		SecureConfig:     secure,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		StartTimeout:     spec.Timeout,
		Logger:           hclogTo(h.log),
		// Stderr is the process's own (runtime panics land there);
		// SyncStderr and SyncStdout carry what the plugin prints to
		// os.Stderr and os.Stdout, which go-plugin relays over gRPC.
		Stderr:     stderr,
		SyncStderr: io.MultiWriter(stderr, h.log.Writer("stderr: ", true)),
		SyncStdout: h.log.Writer("stdout: ", true),
	})
	// Kill waits for the process and go-plugin's goroutines; it is a no-op
	// when the process never started.
	killed := false
	kill := func() {
		if !killed {
			killed = true
			client.Kill()
		}
	}
	defer kill()

	// fail classifies an error after the process is gone, when its exit
	// status is known.
	fail := func(what string, err error) error {
		kill()
		where := fmt.Sprintf("plugin %s at %s", spec.Name, spec.At)
		switch {
		case ctx.Err() != nil:
			return fmt.Errorf("%s: %w; killed", where, ctx.Err())
		case errors.Is(tctx.Err(), context.DeadlineExceeded):
			return fmt.Errorf("%s: timed out after %s; killed", where, spec.Timeout)
		}
		if ps := cmd.ProcessState; ps != nil && !ps.Success() {
			msg := fmt.Sprintf("%s: crashed during %s (%s)", where, what, ps)
			if tail := remote.Tail(stderr.Text(), 10); tail != "" {
				msg += "; stderr: " + tail
			}
			return errors.New(msg)
		}
		if s, ok := status.FromError(err); ok {
			return fmt.Errorf("%s: %s", where, s.Message())
		}
		return fmt.Errorf("%s: %s: %w", where, what, err)
	}

	rpc, err := client.Client()
	if err != nil {
		kill()
		switch {
		case ctx.Err() != nil || tctx.Err() != nil:
			return fail("start-up", err)
		case errors.Is(err, plugin.ErrChecksumsDoNotMatch):
			actual, herr := archive.FileSHA256(path)
			if herr != nil {
				actual = "unknown (" + herr.Error() + ")"
			}
			return fmt.Errorf("plugin %s: checksum mismatch for %s: config pins sha256 %s, the file has %s", spec.Name, spec.Path, strings.ToLower(spec.SHA256), actual)
		}
		msg := fmt.Sprintf("plugin %s: %s is not a Stagecoach plugin (handshake failed): %v", spec.Name, spec.Path, err)
		// An empty handshake line is its stdout closing: a process killed
		// then (out of memory, by an operator) crashed, it is no stranger.
		if ps := cmd.ProcessState; ps != nil && strings.HasPrefix(err.Error(), "Unrecognized remote plugin message: \n") {
			if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				msg = fmt.Sprintf("plugin %s: %s crashed during start-up (%s)", spec.Name, spec.Path, ps)
			}
		}
		// go-plugin takes the first line on stdout for its handshake and,
		// when it is not, guesses at architectures and libraries; the
		// likely cause is a line the plugin printed before sdk.Serve.
		if line, ok := strings.CutPrefix(err.Error(), "Unrecognized remote plugin message: "); ok {
			if line, _, _ = strings.Cut(line, "\n"); line != "" {
				msg = fmt.Sprintf("plugin %s: %s printed %q on stdout before the handshake: a plugin must not write to stdout before sdk.Serve, "+
					"since go-plugin reads its handshake line from there (log to stderr, or with host.Logf in Run); "+
					"a program that is not a Stagecoach plugin fails this way too", spec.Name, spec.Path, line)
			}
		}
		if tail := remote.Tail(stderr.Text(), 5); tail != "" {
			msg += "; stderr: " + tail
		}
		return errors.New(msg)
	}
	raw, err := rpc.Dispense(wire.StageName)
	if err != nil {
		return fail("dispense", err)
	}
	stage := raw.(*wire.Client)

	info, err := stage.Stage.Describe(tctx, &proto.DescribeRequest{})
	if err != nil {
		return fail("Describe", err)
	}
	if len(info.Hooks) > 0 && !slices.Contains(info.Hooks, "*") && !slices.Contains(info.Hooks, spec.At) {
		return fmt.Errorf("plugin %s: configured at %s, but it supports only %s", spec.Name, spec.At, strings.Join(info.Hooks, ", "))
	}
	h.log.Debugf("%s %s started for %s", orName(info.Name, spec.Name), info.Version, spec.At)

	// Serve the Host service on a broker id of its own for this run; the
	// plugin dials it only if it uses the host.
	id := stage.Broker.NextId()
	ln, err := stage.Broker.Accept(id)
	if err != nil {
		return fail("offer the host service", err)
	}
	srv := grpc.NewServer()
	proto.RegisterHostServer(srv, h)
	go srv.Serve(ln)
	defer srv.Stop()

	out, err := stage.Stage.Run(tctx, &proto.RunRequest{
		Hook:              spec.At,
		Environment:       dc.Environment,
		Host:              dc.Host,
		ReleaseId:         dc.Release,
		ReleasePath:       dc.ReleasePath,
		Root:              dc.Root,
		Revision:          dc.Revision,
		PreviousRevision:  dc.Previous,
		ChangedComponents: dc.Changed,
		ConfigJson:        cfgJSON,
		HostServiceId:     id,
		Outcome:           outcomeProto(dc.Outcome),
	})
	if err != nil {
		return fail("Run", err)
	}
	res.Message = out.Message
	return nil
}

func outcomeProto(o *Outcome) *proto.Outcome {
	if o == nil {
		return nil
	}
	out := &proto.Outcome{Result: o.Result, Stage: o.Stage, Cause: o.Cause, DurationMs: o.Duration.Milliseconds()}
	for _, h := range o.Hosts {
		out.Hosts = append(out.Hosts, &proto.HostOutcome{Host: h.Host, ReleaseBefore: h.Before, ReleaseAfter: h.After,
			Switched: h.Switched, Migrated: h.Migrated})
	}
	return out
}

func orName(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// checkExecutable resolves the spec's executable and explains, in terms of
// the fix, why it cannot be run.
func checkExecutable(spec config.Plugin, dir string) (string, error) {
	path, needsBuild := Executable(dir, spec)
	shown := display(dir, path)
	if needsBuild {
		return "", fmt.Errorf("plugin %s: %s is missing or older than its sources in %s; build it with `mage plugins`", spec.Name, shown, spec.Path)
	}
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return "", fmt.Errorf("plugin %s: path %s does not exist; build it with `mage plugins`", spec.Name, shown)
	case err != nil:
		return "", fmt.Errorf("plugin %s: %w", spec.Name, err)
	case !fi.Mode().IsRegular():
		return "", fmt.Errorf("plugin %s: %s is not a regular file", spec.Name, shown)
	case fi.Mode().Perm()&0o111 == 0:
		return "", fmt.Errorf("plugin %s: %s is not executable (mode %s); chmod +x it or rebuild it with `mage plugins`", spec.Name, shown, fi.Mode().Perm())
	}
	return path, nil
}

// display shows path relative to the project root when it is inside it.
func display(dir, path string) string {
	base := dir
	if base == "" {
		base, _ = os.Getwd()
	}
	if rel, err := filepath.Rel(base, path); err == nil && !strings.HasPrefix(rel, "..") {
		return rel
	}
	return path
}

// hostService is the Host service one plugin run talks to.
type hostService struct {
	proto.UnimplementedHostServer
	ctx  context.Context // the run's; commands stop when it ends
	r    remote.Runner   // nil at the notification hook points
	hook string
	log  *ui.Logger
	name string

	mu   sync.Mutex
	logs []string
}

// bound ends a request's context when the run's does, so a command started
// by a plugin cannot outlive the plugin's timeout.
func (h *hostService) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(h.ctx, cancel)
	return ctx, func() { stop(); cancel() }
}

// noTarget is the answer to Exec and ReadFile where there is no target.
func (h *hostService) noTarget() error {
	return status.Errorf(codes.FailedPrecondition, "no deploy target at %s: it runs once per deploy, on the machine running Stagecoach", h.hook)
}

func (h *hostService) Exec(ctx context.Context, in *proto.ExecRequest) (*proto.ExecResponse, error) {
	if h.r == nil {
		return nil, h.noTarget()
	}
	ctx, cancel := h.bound(ctx)
	defer cancel()
	h.log.Debugf("exec on %s: %s", h.r.Target(), in.Cmd)
	res, err := h.r.Run(ctx, remote.Command{
		Desc:   fmt.Sprintf("plugin %s command", h.name),
		Script: in.Cmd,
		Stdin:  bytes.NewReader(in.Stdin),
	})
	var exit *remote.ExitError
	if err != nil && !errors.As(err, &exit) {
		return nil, status.Error(codes.Unavailable, err.Error())
	}
	return &proto.ExecResponse{ExitCode: int32(res.ExitCode), Stdout: res.Stdout, Stderr: res.Stderr}, nil
}

func (h *hostService) ReadFile(ctx context.Context, in *proto.ReadFileRequest) (*proto.ReadFileResponse, error) {
	if h.r == nil {
		return nil, h.noTarget()
	}
	ctx, cancel := h.bound(ctx)
	defer cancel()
	data, err := h.r.ReadFile(ctx, in.Path)
	if err != nil {
		return nil, status.Error(codes.NotFound, err.Error())
	}
	return &proto.ReadFileResponse{Data: data}, nil
}

func (h *hostService) Log(_ context.Context, in *proto.LogRequest) (*proto.LogResponse, error) {
	line := in.Message
	switch strings.ToLower(in.Level) {
	case "debug":
		h.log.Debugf("%s", in.Message)
		line = "debug: " + line
	case "warn", "warning":
		h.log.Warnf("%s", in.Message)
		line = "warn: " + line
	case "error":
		h.log.Errorf("%s", in.Message)
		line = "error: " + line
	default:
		h.log.Infof("%s", in.Message)
	}
	h.mu.Lock()
	h.logs = append(h.logs, h.log.Redact(line))
	h.mu.Unlock()
	return &proto.LogResponse{}, nil
}

func (h *hostService) lines() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.logs)
}

// hclogTo routes go-plugin's own log, and the plugin's stderr that it
// relays, into log at debug level.
func hclogTo(log *ui.Logger) hclog.Logger {
	if !log.Verbose() {
		return hclog.NewNullLogger()
	}
	return hclog.New(&hclog.LoggerOptions{
		Name:        "go-plugin",
		Level:       hclog.Debug,
		Output:      log.Writer("", true),
		DisableTime: true,
	})
}

// tailBuffer keeps the last max bytes written, for error messages.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = t.buf[len(t.buf)-t.max:]
	}
	return len(p), nil
}

// Text is the kept output without go-plugin's debug and trace lines,
// which say nothing about why a plugin failed.
func (t *tailBuffer) Text() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var keep []string
	for _, line := range strings.Split(string(t.buf), "\n") {
		if strings.Contains(line, `"@level":"debug"`) || strings.Contains(line, `"@level":"trace"`) {
			continue
		}
		keep = append(keep, line)
	}
	return strings.Join(keep, "\n")
}
