// Package ui is what a person sees: timestamped log lines, a verbose mode,
// progress bars for long transfers and summary tables. Every line passes
// through a redactor so secret values never reach a terminal or a log file.
package ui

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"
)

// Logger writes timestamped lines. The zero value is not usable; call New.
type Logger struct {
	*sink
	verbose bool
	now     func() time.Time
	prefix  string
}

// sink is shared by a Logger and every Logger derived from it with With, so
// their lines never interleave and a secret added to one is masked by all.
type sink struct {
	mu      sync.Mutex
	out     io.Writer
	secrets []string

	// On a terminal the running progress bars share its last line: every
	// log line clears it first and draws the bars again after itself.
	tty   bool
	width func() int  // the terminal's columns
	bars  []*Progress // running, drawn oldest first
	shown bool        // the last line holds the bars
	drawn time.Time   // when they were last drawn
}

// New returns a Logger writing to out. verbose enables Debugf lines.
// Progress bars are drawn only when out is a terminal.
func New(out io.Writer, verbose bool) *Logger {
	s := &sink{out: out}
	if f, ok := out.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		s.tty = true
		s.width = func() int {
			if w, _, err := term.GetSize(int(f.Fd())); err == nil && w > 0 {
				return w
			}
			return 80
		}
	}
	return &Logger{sink: s, verbose: verbose, now: time.Now}
}

// Default logs to stderr, verbose when mage runs with -v (MAGEFILE_VERBOSE).
func Default() *Logger {
	v := os.Getenv("MAGEFILE_VERBOSE")
	return New(os.Stderr, v == "1" || v == "true")
}

// Discard is a Logger that prints nothing, for tests and quiet modes.
func Discard() *Logger { return New(io.Discard, false) }

// Verbose reports whether debug lines are printed.
func (l *Logger) Verbose() bool { return l.verbose }

// With returns a Logger sharing this one's output and secrets whose lines
// start with prefix, e.g. the host name.
func (l *Logger) With(prefix string) *Logger {
	return &Logger{sink: l.sink, verbose: l.verbose, now: l.now, prefix: l.prefix + prefix + ": "}
}

// AddSecret registers a value that must never be printed; it is replaced by
// "***" in every line. Values shorter than 4 bytes are ignored, since masking
// them would garble ordinary text.
func (l *Logger) AddSecret(value string) {
	if len(value) < 4 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.secrets = append(l.secrets, value)
}

// Redact replaces every registered secret in s.
func (l *Logger) Redact(s string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return redact(s, l.secrets)
}

func redact(s string, secrets []string) string {
	for _, secret := range secrets {
		s = strings.ReplaceAll(s, secret, "***")
	}
	return s
}

// Infof prints one line.
func (l *Logger) Infof(format string, args ...any) { l.line("", format, args...) }

// Warnf prints one line marked as a warning.
func (l *Logger) Warnf(format string, args ...any) { l.line("WARN ", format, args...) }

// Errorf prints one line marked as an error.
func (l *Logger) Errorf(format string, args ...any) { l.line("ERROR ", format, args...) }

// Debugf prints one line in verbose mode only.
func (l *Logger) Debugf(format string, args ...any) {
	if l.verbose {
		l.line("", format, args...)
	}
}

// Step logs the start of an operation at debug level and returns a function
// that logs its duration, so every operation's cost shows with -v.
func (l *Logger) Step(name string) (done func()) {
	start := l.now()
	l.Debugf("%s ...", name)
	return func() { l.Debugf("%s done in %s", name, Round(time.Since(start))) }
}

func (l *Logger) line(level, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lineLocked(level, msg)
}

// lineLocked writes msg's lines with l.mu held, clearing the progress bars
// first and drawing them again after, so no line is glued to a bar.
func (l *Logger) lineLocked(level, msg string) {
	stamp := l.now().Format("15:04:05")
	var b strings.Builder
	for _, text := range strings.Split(strings.TrimRight(msg, "\n"), "\n") {
		fmt.Fprintf(&b, "[%s] %s%s%s\n", stamp, level, l.prefix, text)
	}
	l.writeLocked(redact(b.String(), l.secrets))
}

// writeLocked writes finished lines with l.mu held, around the bars.
func (l *Logger) writeLocked(text string) {
	if l.shown {
		text = clearLine + text
	}
	// One write, so the terminal never shows the lines without the bars.
	bars := l.barLine()
	io.WriteString(l.out, text+bars)
	if l.shown = bars != ""; l.shown {
		l.drawn = l.now()
	}
}

// Held is a Logger whose lines wait, stamped and masked as they are
// logged, until Release writes them to the Logger it was made from: for
// work started before it is known to count, whose lines are then dropped.
type Held struct {
	*Logger
	parent *Logger
	buf    *bytes.Buffer
}

// Hold returns a Held logger with this one's prefix, verbosity and secrets.
func (l *Logger) Hold() *Held {
	var buf bytes.Buffer
	l.mu.Lock()
	secrets := slices.Clone(l.secrets)
	l.mu.Unlock()
	held := &Logger{sink: &sink{out: &buf, secrets: secrets}, verbose: l.verbose, now: l.now, prefix: l.prefix}
	return &Held{Logger: held, parent: l, buf: &buf}
}

// Release writes the lines logged so far to the parent Logger, and hands
// it every later line as it is logged.
func (h *Held) Release() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.parent.mu.Lock()
	if h.buf.Len() > 0 {
		h.parent.writeLocked(h.buf.String())
	}
	h.parent.mu.Unlock()
	h.buf.Reset()
	h.out = parentWriter{h.parent}
}

// parentWriter writes finished lines to a Logger's output.
type parentWriter struct{ l *Logger }

func (w parentWriter) Write(p []byte) (int, error) {
	w.l.mu.Lock()
	defer w.l.mu.Unlock()
	w.l.writeLocked(string(p))
	return len(p), nil
}

// Writer returns an io.Writer that logs each complete line it receives,
// prefixed by prefix, for streaming command output into the log. It is safe
// for concurrent use, so one writer may take a process's stdout and stderr.
func (l *Logger) Writer(prefix string, debugOnly bool) io.WriteCloser {
	return &lineWriter{log: l, prefix: prefix, debugOnly: debugOnly}
}

type lineWriter struct {
	mu        sync.Mutex
	log       *Logger
	prefix    string
	debugOnly bool
	buf       []byte
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := strings.IndexByte(string(w.buf), '\n')
		if i < 0 {
			return len(p), nil
		}
		w.emit(string(w.buf[:i]))
		w.buf = w.buf[i+1:]
	}
}

// Close flushes a final line without a newline.
func (w *lineWriter) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) > 0 {
		w.emit(string(w.buf))
		w.buf = nil
	}
	return nil
}

func (w *lineWriter) emit(text string) {
	if w.debugOnly {
		w.log.Debugf("%s%s", w.prefix, text)
	} else {
		w.log.Infof("%s%s", w.prefix, text)
	}
}

// Round shortens a duration for display: milliseconds below 10s, else 0.1s.
func Round(d time.Duration) time.Duration {
	if d < 10*time.Second {
		return d.Round(time.Millisecond)
	}
	return d.Round(100 * time.Millisecond)
}
