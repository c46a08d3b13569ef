package server

import (
	"embed"
	"fmt"

	"github.com/stagecoach/stagecoach/stages/remote"
)

// The scripts run on the server are real files in scripts/, so shellcheck
// reads them as they run, and values reach them only as quoted arguments
// (or on stdin), never spliced into their text.
//
//go:embed scripts
var scriptFiles embed.FS

// loaded records the files load was asked for, so a test can tell that
// none in scripts/ is left unused.
var loaded = map[string]bool{}

// script is one embedded file: a POSIX sh script, run with its arguments by
// line or cmd, or an awk program handed to a script as an argument.
type script struct {
	name string // file name: the script's $0, which sh names in its errors
	src  string
}

// load returns scripts/<name>. The scripts are package variables, so a
// missing file panics when the package initialises, in every test run.
func load(name string) script {
	b, err := scriptFiles.ReadFile("scripts/" + name)
	if err != nil {
		panic(fmt.Sprintf("server: embedded script: %v", err))
	}
	loaded[name] = true
	return script{name: name, src: string(b)}
}

// argv returns the command running s with args: s's source as the one
// argument of `/bin/sh -c`, then its $0 and the arguments. /bin/sh rather
// than sh: the runner runs /bin/sh too, and a PATH that a caller or
// shared/.env changed must not choose the shell.
func (s script) argv(args ...string) []string {
	return append([]string{"/bin/sh", "-c", s.src, s.name}, args...)
}

// line returns the shell command line running s with args, each quoted.
func (s script) line(args ...string) string {
	return remote.Join(s.argv(args...)...)
}

// cmd returns a Command running s with args. The shell the runner starts
// execs the script's: a fork fewer per command, which a host serving a
// deploy's many commands (or a machine serving many hosts) feels. Its
// Script is thus a whole script, not a line to join with others: see
// line.
func (s script) cmd(desc string, args ...string) remote.Command {
	return remote.Command{Desc: desc, Script: "exec " + s.line(args...), Inline: s.inline(args...)}
}

// inline is s with args for a /bin/sh of its own (remote.Command's
// Inline): the arguments set, then the source.
func (s script) inline(args ...string) string {
	return remote.Join(append([]string{"set", "--"}, args...)...) + "\n" + s.src
}

// public is cmd for arguments that hold nothing secret (remote.Command's
// Public): paths, ids, the lock's record.
func (s script) public(desc string, args ...string) remote.Command {
	c := s.cmd(desc, args...)
	c.Public = true
	return c
}
