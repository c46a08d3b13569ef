package config

import (
	"reflect"
	"strings"
	"testing"
)

func adoptYAML(block string) string {
	return "app: shop\ncomponents:\n  frontend: {watch: [\"frontend/**\"], output: frontend/dist}\n  backend: {watch: [\"backend/**\"], output: backend/dist}\n" +
		"environments:\n  prod:\n    hosts: [deploy@web1]\n    root: /srv/shop\n    shared: [data, uploads]\n" + block
}

func TestAdoptBlock(t *testing.T) {
	cfg, err := Parse([]byte(adoptYAML("    adopt:\n      app: { frontend: frontend/dist, backend: /opt/shop/bin }\n      data: { data: data }\n      web_root: frontend\n")), "stagecoach.yml", "/p")
	if err != nil {
		t.Fatal(err)
	}
	a := cfg.Environments[0].Adopt
	want := &Adopt{App: map[string]string{"frontend": "frontend/dist", "backend": "/opt/shop/bin"}, Data: map[string]string{"data": "data"}, WebRoot: "frontend"}
	if !reflect.DeepEqual(a, want) {
		t.Errorf("adopt %+v, want %+v", a, want)
	}
	if got := Sorted(a.App); !reflect.DeepEqual(got, []string{"backend", "frontend"}) {
		t.Errorf("Sorted = %q", got)
	}
	cfg, err = Parse([]byte(adoptYAML("")), "stagecoach.yml", "/p")
	if err != nil || cfg.Environments[0].Adopt != nil {
		t.Errorf("no adopt block: %+v, %v", cfg.Environments[0].Adopt, err)
	}
}

func TestAdoptErrors(t *testing.T) {
	for _, tc := range []struct{ name, block, want string }{
		{"no app", "    adopt: { data: { data: data } }\n",
			`stagecoach.yml:10: environments.prod.adopt: app is required`},
		{"not a component", "    adopt:\n      app: { frontnd: frontend/dist }\n",
			`stagecoach.yml:11: environments.prod.adopt.app.frontnd: "frontnd" is not where a component goes in a release (expected one of: frontend, backend)`},
		{"live path escapes", "    adopt:\n      app: { frontend: ../www }\n",
			`environments.prod.adopt.app.frontend: "../www" must name a directory inside the root or an absolute one, not the root itself`},
		{"live path is the root", "    adopt:\n      app: { frontend: . }\n",
			`"." must name a directory inside the root`},
		{"live path unclean", "    adopt:\n      app: { frontend: frontend/dist/ }\n",
			`"frontend/dist/" must be a clean path`},
		{"live path of stagecoach", "    adopt:\n      app: { frontend: shared/www }\n",
			`"shared/www" is one of stagecoach's own paths`},
		{"release path absolute", "    adopt:\n      app: { /frontend: www }\n",
			`"/frontend" must be a clean relative path inside the release`},
		{"data not shared", "    adopt:\n      app: { frontend: www }\n      data: { db: var/db }\n",
			`stagecoach.yml:12: environments.prod.adopt.data.db: "db" is not in the environment's shared list (expected one of: data, uploads)`},
		{"web root unknown", "    adopt:\n      app: { frontend: www }\n      web_root: backend\n",
			`stagecoach.yml:12: environments.prod.adopt.web_root: "backend" is not a key of adopt.app (expected one of: frontend)`},
		{"unknown key", "    adopt:\n      app: { frontend: www }\n      webroot: frontend\n",
			`environments.prod.adopt: unknown key "webroot" (expected one of: app, data, web_root)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(adoptYAML(tc.block)), "stagecoach.yml", "/p")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error:\n  %v\nwant it to contain:\n  %s", err, tc.want)
			}
		})
	}
}
