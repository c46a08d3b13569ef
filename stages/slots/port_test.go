package slots_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/stagecoach/stagecoach/stages/check"
	"github.com/stagecoach/stagecoach/stages/pipeline/pipelinetest"
	"github.com/stagecoach/stagecoach/stages/run"
	"github.com/stagecoach/stagecoach/stages/run/runtest"
)

// TestSlotPortOverHostVars: with a host's vars.PORT (and env.vars' PORT)
// set, everything that runs in a slot (its start and stop commands, its
// own checks, the router command) sees the slot's port as PORT and
// {port}; {vars.PORT} in a check stays the host's value, and so does PORT
// for the public checks, which run outside a slot; check agrees.
func TestSlotPortOverHostVars(t *testing.T) {
	blue, green := freePort(t), freePort(t)
	e := runtest.New(t, runtest.Options{
		Settings:    []string{"vars: {PORT: 9999}"},
		Environment: "    env: {vars: {PORT: \"80\"}}\n",
		Health: "      - command: test \"$PORT\" = {port} && test \"$(cat ../../shared/slot-{port})\" = \"$STAGECOACH_RELEASE\"\n" +
			"      - command: test \"$PORT\" = 9999 && test {vars.PORT} = 9999\n",
		Services: fmt.Sprintf(`    services:
      manager: command
      restart: ['echo "$STAGECOACH_RELEASE" > ../../shared/slot-{port}; echo "start $PORT {port}" >> ../../shared/ports.log']
      stop: ['rm -f ../../shared/slot-{port}; echo "stop $PORT {port}" >> ../../shared/ports.log']
      slots: {ports: [%d, %d]}
      router: {command: 'echo "router $PORT {port}" >> ../../shared/ports.log'}
      drain: 100ms
`, blue, green)})
	pipelinetest.Deploy(t, e)
	e.Write(t, "app/main.txt", "v2\n")
	e.Commit(t, "v2")
	pipelinetest.Deploy(t, e)
	want := fmt.Sprintf("start %[1]d %[1]d\nrouter %[1]d %[1]d\nstart %[2]d %[2]d\nrouter %[2]d %[2]d\nstop %[1]d %[1]d\n", blue, green)
	if got := read(t, filepath.Join(e.Roots[0], "shared", "ports.log")); got != want {
		t.Errorf("what ran in the slots saw:\n%s\nwant:\n%s", got, want)
	}
	rep, err := check.Run(context.Background(), e.Open(t, run.Options{}))
	if err != nil {
		t.Errorf("check: %v", err)
	}
	for _, c := range rep.Checks {
		if c.Status == check.StatusFailed {
			t.Errorf("check %s failed: %s", c.Check, c.Message)
		}
	}
}
