package server

import (
	"strings"
	"testing"
)

// TestHealthCommand: a command check runs in the release directory with
// shared/.env exported and the three STAGECOACH_* variables set; a failing
// one names itself, not its script, in sh's errors.
func TestHealthCommand(t *testing.T) {
	l := newRoot(t)
	mustMkRelease(t, l, id1)
	env, err := FormatEnv(map[string]string{"APP_PORT": "8080"})
	if err != nil {
		t.Fatal(err)
	}
	mustRun(t, WriteEnv(l, env), nil)
	host := "deploy@web1:22"
	res := mustRun(t, mustCmd(HealthCommand(l, id1, host, `printf '%s|%s|%s|%s|%s|%s' "$PWD" "$APP_PORT" "$STAGECOACH_RELEASE" "$STAGECOACH_ROOT" "$STAGECOACH_HOST" "$#"`)), nil)
	want := strings.Join([]string{l.ReleaseDir(id1), "8080", id1, l.Root, host, "0"}, "|")
	if string(res.Stdout) != want {
		t.Errorf("got  %s\nwant %s", res.Stdout, want)
	}

	cmd, err := HealthCommand(l, id1, host, "no-such-command-xyz")
	if err != nil {
		t.Fatal(err)
	}
	if cmd.Desc != "health check" {
		t.Errorf("desc %q", cmd.Desc)
	}
	_, rerr := run(t, cmd)
	if rerr == nil || !strings.Contains(rerr.Error(), "health check") || !strings.Contains(rerr.Error(), "not found") {
		t.Errorf("error %v, want sh's not found named after the check", rerr)
	}
	if _, err := HealthCommand(l, "../x", host, "true"); err == nil {
		t.Error("a bad release id was accepted")
	}
}

// TestSlotHealthCommand: a slot's command check sees the slot's port as
// PORT, over the PORT that shared/.env sets from a host's vars.
func TestSlotHealthCommand(t *testing.T) {
	l := newRoot(t)
	mustMkRelease(t, l, id1)
	env, err := FormatEnv(map[string]string{"PORT": "9999"})
	if err != nil {
		t.Fatal(err)
	}
	mustRun(t, WriteEnv(l, env), nil)
	res := mustRun(t, mustCmd(SlotHealthCommand(l, id1, "deploy@web1", 8082, `printf '%s|%s|%s' "$PORT" "$STAGECOACH_HOST" "$(basename "$PWD")"`)), nil)
	if got, want := string(res.Stdout), "8082|deploy@web1|"+id1; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	res = mustRun(t, mustCmd(HealthCommand(l, id1, "deploy@web1", `printf %s "$PORT"`)), nil)
	if got := string(res.Stdout); got != "9999" {
		t.Errorf("a public check sees PORT %q, want shared/.env's 9999", got)
	}
}
