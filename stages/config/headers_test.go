package config

import (
	"reflect"
	"strings"
	"testing"

	"github.com/stagecoach/stagecoach/stages/ui"
)

// headersConfig is a config whose one environment has the HTTP check
// headers given as YAML lines (indented under headers:), and env given.
func headersConfig(headers, extra string) string {
	return "app: shop\ncomponents:\n  web:\n    watch: [\"web/**\"]\n    output: web/dist\n" +
		"environments:\n  prod:\n    hosts: [deploy@web1]\n    root: /srv/shop\n" +
		"    env:\n      vars: { REGION: eu }\n      secrets: [HEALTH_TOKEN]\n" +
		"    health:\n      - http: \"http://{host}/healthz\"\n" + extra +
		"        headers:\n" + headers
}

func TestHealthHeaders(t *testing.T) {
	tests := []struct {
		name, headers, extra string
		want                 string // error; "" for none
	}{
		{name: "plain and secret", headers: "          X-Region: \"${REGION}\"\n          Authorization: \"Bearer ${HEALTH_TOKEN}\"\n          Accept: application/json\n"},
		{name: "bad name with space", headers: "          \"X Token\": abc\n",
			want: `stagecoach.yml:16: environments.prod.health[0].headers.X Token: "X Token" is not an HTTP header name`},
		{name: "bad name with colon", headers: "          \"X-Token:\": abc\n",
			want: `stagecoach.yml:16: environments.prod.health[0].headers.X-Token:: "X-Token:" is not an HTTP header name`},
		{name: "unknown reference", headers: "          X-Token: \"${NOPE}\"\n",
			want: `stagecoach.yml:16: environments.prod.health[0].headers.X-Token: header X-Token refers to ${NOPE}, which is neither in env.vars nor in env.secrets`},
		{name: "bad reference", headers: "          X-Token: \"${1A}\"\n",
			want: `stagecoach.yml:16: environments.prod.health[0].headers.X-Token: header X-Token: ${1A} does not name a variable`},
		{name: "unclosed reference", headers: "          X-Token: \"${HEALTH_TOKEN\"\n",
			want: `header X-Token: unclosed ${`},
		{name: "same name twice", headers: "          X-Token: a\n          x-token: b\n",
			want: `header X-Token is set twice`},
		{name: "line break in value", headers: "          X-Token: \"a\\nb\"\n",
			want: `the value of header X-Token holds a line break`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(headersConfig(tt.headers, tt.extra)), "stagecoach.yml", "/p")
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want it to contain %q", err, tt.want)
			}
		})
	}

	cmd := "app: shop\ncomponents:\n  web:\n    watch: [\"web/**\"]\n    output: web/dist\n" +
		"environments:\n  prod:\n    hosts: [deploy@web1]\n    root: /srv/shop\n" +
		"    health:\n      - command: \"true\"\n        headers: { X-A: b }\n"
	if _, err := Parse([]byte(cmd), "stagecoach.yml", "/p"); err == nil || !strings.Contains(err.Error(), "stagecoach.yml:11: environments.prod.health[0]: expect, body and headers apply to http checks only") {
		t.Errorf("headers on a command check: %v", err)
	}
}

// TestHealthHeaderSecretMasked: a header's ${NAME} resolves from the
// environment's values, and LoadEnv lists the value as a secret, so the
// logger masks it.
func TestHealthHeaderSecretMasked(t *testing.T) {
	cfg, err := Parse([]byte(headersConfig("          Authorization: \"Bearer ${HEALTH_TOKEN}\"\n          X-Region: \"${REGION}\"\n          Accept: text/plain\n", "")), "stagecoach.yml", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	env := &cfg.Environments[0]
	lookup := func(name string) (string, bool) {
		if name == "HEALTH_TOKEN" {
			return "tok-5ecret-value", true
		}
		return "", false
	}
	values, secrets, err := env.LoadEnv(cfg.Dir, lookup)
	if err != nil {
		t.Fatal(err)
	}
	headers, _ := env.Health[0].ResolveHeaders(values)
	want := map[string]string{"Authorization": "Bearer tok-5ecret-value", "X-Region": "eu", "Accept": "text/plain"}
	if !reflect.DeepEqual(headers, want) {
		t.Errorf("headers %q, want %q", headers, want)
	}
	var log strings.Builder
	l := ui.New(&log, false)
	for _, s := range secrets {
		l.AddSecret(s)
	}
	l.Infof("sent %v", headers)
	if strings.Contains(log.String(), "tok-5ecret-value") {
		t.Errorf("the secret header value shows: %s", log.String())
	}
	if !strings.Contains(log.String(), "text/plain") {
		t.Errorf("a plain header value is masked too: %s", log.String())
	}
}
