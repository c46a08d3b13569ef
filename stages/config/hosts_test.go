package config

import (
	"reflect"
	"strings"
	"testing"
)

const hostsBase = "app: shop\ncomponents: {web: {watch: [a], output: d}}\nenvironments:\n  prod:\n    root: /srv/shop\n"

func TestHostsWithSettings(t *testing.T) {
	cfg, err := Parse([]byte(hostsBase+`    hosts:
      - deploy@web1:22
      - {host: "deploy@web2:22", vars: {PORT: 8081, NAME: two}, tags: [web, eu]}
      - host: deploy@db1
        tags: [db]
    health:
      - http: "http://{host}:{vars.PORT}/healthz"
      - command: test "$PORT" = {vars.PORT}
`), "stagecoach.yml", "/p")
	if err == nil {
		t.Fatal("accepted {vars.PORT} that two hosts do not set")
	}
	for _, want := range []string{
		`stagecoach.yml:12: environments.prod.health[0]: {vars.PORT} refers to vars.PORT, which host "deploy@web1:22" (line 7) does not set`,
		`stagecoach.yml:12: environments.prod.health[0]: {vars.PORT} refers to vars.PORT, which host "deploy@db1" (line 9) does not set`,
		`stagecoach.yml:13: environments.prod.health[1]: {vars.PORT} refers to vars.PORT`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}

	cfg, err = Parse([]byte(hostsBase+`    hosts:
      - deploy@web1:22
      - {host: "deploy@web2:22", vars: {PORT: 8081, NAME: two}, tags: [web, eu]}
      - host: deploy@db1
        tags: [db]
`), "stagecoach.yml", "/p")
	if err != nil {
		t.Fatal(err)
	}
	want := []Host{
		{Host: "deploy@web1:22", Line: 7},
		{Host: "deploy@web2:22", Vars: map[string]string{"PORT": "8081", "NAME": "two"}, Tags: []string{"web", "eu"}, Line: 8},
		{Host: "deploy@db1", Tags: []string{"db"}, Line: 9},
	}
	if got := cfg.Environments[0].Hosts; !reflect.DeepEqual(got, want) {
		t.Errorf("hosts = %+v\nwant %+v", got, want)
	}
}

func TestHostErrors(t *testing.T) {
	tests := []struct{ name, hosts, want string }{
		{"unknown key", "    hosts:\n      - {host: d@web1, var: {A: 1}}\n",
			`stagecoach.yml:7: environments.prod.hosts[0]: unknown key "var" (expected one of: host, vars, tags)`},
		{"no host", "    hosts:\n      - {vars: {A: 1}}\n",
			`stagecoach.yml:7: environments.prod.hosts[0]: host is required: the SSH target`},
		{"list", "    hosts:\n      - [d@web1]\n",
			`stagecoach.yml:7: environments.prod.hosts[0]: expected a host (deploy@web1) or a mapping {host: deploy@web1, vars: {...}, tags: [...]}, got a list`},
		{"bad host in mapping", "    hosts:\n      - {host: \"d@web1:0\"}\n",
			`stagecoach.yml:7: environments.prod.hosts[0]: invalid host "d@web1:0": port "0" is not a number from 1 to 65535`},
		{"var not plain", "    hosts:\n      - host: d@web1\n        vars: {PORT: [1]}\n",
			`stagecoach.yml:8: environments.prod.hosts[0].vars.PORT: expected a plain value, got a list`},
		{"bad var name", "    hosts:\n      - {host: d@web1, vars: {1PORT: 1}}\n",
			`stagecoach.yml:7: environments.prod.hosts[0].vars.1PORT: "1PORT" is not a valid variable name`},
		{"bad tag", "    hosts:\n      - {host: d@web1, tags: [\"a b\"]}\n",
			`stagecoach.yml:7: environments.prod.hosts[0].tags[0]: tag "a b" may contain only letters, digits, - and _`},
		{"tag twice", "    hosts:\n      - {host: d@web1, tags: [a, a]}\n",
			`stagecoach.yml:7: environments.prod.hosts[0].tags[1]: tag "a" is listed twice`},
		{"same address and root", "    hosts:\n      - deploy@web1\n      - {host: \"admin@web1:22\", tags: [x]}\n",
			`stagecoach.yml:8: environments.prod.hosts[1]: host "admin@web1:22" has the same address (web1:22) and root as host "deploy@web1" at line 7`},
		{"same IPv6 address", "    hosts:\n      - \"deploy@[::1]:2222\"\n      - \"ops@[::1]:2222\"\n",
			`stagecoach.yml:8: environments.prod.hosts[1]: host "ops@[::1]:2222" has the same address ([::1]:2222) and root as host "deploy@[::1]:2222" at line 7`},
		{"bad var reference", "    hosts: [d@web1]\n    health:\n      - http: \"http://{host}:{vars.P-1}/\"\n",
			`stagecoach.yml:8: environments.prod.health[0]: "http://{host}:{vars.P-1}/": a host value is written {vars.NAME}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(hostsBase+tc.hosts), "stagecoach.yml", "/p")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error = %v\nwant it to contain %q", err, tc.want)
			}
		})
	}
}

func TestHostsSharingAMachine(t *testing.T) {
	// Two ports of one address are two sshd, and {host} in the root gives
	// two hosts of one machine roots of their own: neither is an error.
	for _, hosts := range []string{
		"    hosts: [\"deploy@web1:22\", \"deploy@web1:2222\"]\n",
		"    hosts: [deploy@127.0.0.2, deploy@127.0.0.3]\n",
	} {
		if _, err := Parse([]byte(hostsBase+hosts), "stagecoach.yml", "/p"); err != nil {
			t.Errorf("%s: %v", hosts, err)
		}
	}
	doc := strings.Replace(hostsBase, "/srv/shop", "/srv/{host}/shop", 1) + "    hosts: [deploy@127.0.0.2, \"deploy@127.0.0.2:22\"]\n"
	if _, err := Parse([]byte(doc), "stagecoach.yml", "/p"); err == nil || !strings.Contains(err.Error(), "same address (127.0.0.2:22) and root") {
		t.Errorf("{host} roots of one address: err = %v", err)
	}
}

func TestSelect(t *testing.T) {
	env := &Environment{Name: "prod", Hosts: []Host{
		{Host: "deploy@web1:22", Tags: []string{"web"}},
		{Host: "deploy@web2", Tags: []string{"web", "eu"}},
		{Host: "deploy@db1", Tags: []string{"db"}},
		{Host: "local"},
	}}
	tests := []struct {
		spec    string
		want    []string
		wantErr string
	}{
		{"deploy@web1:22", []string{"deploy@web1:22"}, ""},
		{"web1", []string{"deploy@web1:22"}, ""},
		{"web1:22", []string{"deploy@web1:22"}, ""},
		{"deploy@web1", []string{"deploy@web1:22"}, ""},
		{"tag:web", []string{"deploy@web1:22", "deploy@web2"}, ""},
		{"db1, tag:eu", []string{"deploy@web2", "deploy@db1"}, ""},
		{"local,web1", []string{"deploy@web1:22", "local"}, ""},
		{"web3", nil, `environment prod has no host "web3" (hosts: deploy@web1:22, deploy@web2, deploy@db1, local)`},
		{"tag:api", nil, `no host of environment prod has tag "api" (tags: web, eu, db)`},
		{" , ", nil, "no hosts selected"},
	}
	for _, tc := range tests {
		got, err := env.Select(tc.spec)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Select(%q) error = %v, want %q", tc.spec, err, tc.wantErr)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(HostNames(got), tc.want) {
			t.Errorf("Select(%q) = %v, %v; want %v", tc.spec, HostNames(got), err, tc.want)
		}
	}
}
