package remote

import (
	"os/exec"
	"strings"
	"testing"
)

func TestQuote(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", "''"},
		{"abc", "abc"},
		{"/srv/app/releases/20240101-abc", "/srv/app/releases/20240101-abc"},
		{"user@host:22", "user@host:22"},
		{"a b", "'a b'"},
		{"it's", `'it'\''s'`},
		{"$HOME", "'$HOME'"},
		{"a\nb", "'a\nb'"},
		{"*", "'*'"},
		{"~", "'~'"},
		{"-rf", "-rf"},
	}
	for _, tt := range tests {
		if got := Quote(tt.in); got != tt.want {
			t.Errorf("Quote(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestJoin(t *testing.T) {
	tests := []struct {
		argv []string
		want string
	}{
		{nil, ""},
		{[]string{"ls"}, "ls"},
		{[]string{"echo", "a b", ""}, "echo 'a b' ''"},
		{[]string{"rm", "-rf", "--", "x;y"}, "rm -rf -- 'x;y'"},
	}
	for _, tt := range tests {
		if got := Join(tt.argv...); got != tt.want {
			t.Errorf("Join(%q) = %q, want %q", tt.argv, got, tt.want)
		}
	}
}

// TestQuoteRoundTrip passes nasty strings through a real /bin/sh and checks
// each arrives as exactly one unchanged argument.
func TestQuoteRoundTrip(t *testing.T) {
	nasty := []string{
		"", " ", "plain", "two words", "it's", `"double"`, "back\\slash", "$HOME", "${PATH}",
		"$(id)", "`id`", "; rm -rf /", "a|b&c", "<in >out", "*", "?", "[a]", "~", "~root",
		"line1\nline2", "tab\there", "'", "''", `'\''`, "!event", "#comment", "a=b",
		"ünïcødé ☃", "-n", "--", "\x01\x7f", "trailing\n",
	}
	script := `for a in "$@"; do printf '%s\0' "$a"; done`
	// Run the quoted line itself through sh -c, so the shell parses our quoting.
	line := "set -- " + Join(nasty...) + "; " + script
	out, err := exec.Command("/bin/sh", "-c", line).Output()
	if err != nil {
		t.Fatalf("sh: %v", err)
	}
	got := strings.Split(string(out), "\x00")
	got = got[:len(got)-1]
	if len(got) != len(nasty) {
		t.Fatalf("got %d args, want %d: %q", len(got), len(nasty), got)
	}
	for i := range nasty {
		if got[i] != nasty[i] {
			t.Errorf("arg %d: got %q, want %q", i, got[i], nasty[i])
		}
	}
}

func TestChain(t *testing.T) {
	run := func(c Command) (string, int) {
		cmd := exec.Command("/bin/sh", "-c", c.Script)
		cmd.Stdin = c.Stdin
		out, _ := cmd.Output()
		return string(out), cmd.ProcessState.ExitCode()
	}
	first := Script("first", "set -e\necho one\nexit 0")
	reader := Command{Desc: "reader", Script: "read -r line; echo \"got $line\"", Stdin: strings.NewReader("input\n")}
	failing := Script("failing", "echo two; exit 7")
	never := Script("never", "echo three")

	c, err := Chain("all", first, reader, failing, never)
	if err != nil {
		t.Fatal(err)
	}
	if out, code := run(c); out != "one\ngot input\ntwo\n" || code != 7 {
		t.Errorf("chain printed %q and exited %d, want the first three in order and exit 7", out, code)
	}
	// The commands without stdin read nothing, even when the chain has some.
	reader.Stdin = strings.NewReader("input\n")
	c, _ = Chain("order", Script("greedy", "cat"), reader)
	if out, code := run(c); out != "got input\n" || code != 0 {
		t.Errorf("got %q, exit %d", out, code)
	}
	if _, err := Chain("two readers", reader, reader); err == nil {
		t.Error("two commands reading stdin were chained")
	}
}
