package probe

import (
	"testing"

	"github.com/stagecoach/stagecoach/stages/config"
)

func TestWithVars(t *testing.T) {
	vars := map[string]string{"PORT": "8081", "NAME": "it's; rm -rf /"}
	tests := []struct {
		in, want config.HealthCheck
	}{
		{config.HealthCheck{HTTP: "http://{host}:{vars.PORT}/healthz"}, config.HealthCheck{HTTP: "http://{host}:8081/healthz"}},
		{config.HealthCheck{Command: "curl -fs localhost:{vars.PORT}/"}, config.HealthCheck{Command: "curl -fs localhost:8081/"}},
		// A value is one shell word, whatever it holds.
		{config.HealthCheck{Command: "test {vars.NAME} = x"}, config.HealthCheck{Command: `test 'it'\''s; rm -rf /' = x`}},
		{config.HealthCheck{Command: "echo {vars.MISSING} {host}"}, config.HealthCheck{Command: "echo {vars.MISSING} {host}"}},
	}
	for _, tc := range tests {
		if got := WithVars(tc.in, vars); got.HTTP != tc.want.HTTP || got.Command != tc.want.Command {
			t.Errorf("WithVars(%+v) = %+v, want %+v", tc.in, got, tc.want)
		}
	}
}
