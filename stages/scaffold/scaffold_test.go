package scaffold_test

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/stagecoach/stagecoach/stages/config"
	"github.com/stagecoach/stagecoach/stages/scaffold"
)

// Shapes of repositories init is tried on, as files and their contents.
var (
	lock      = `{"name":"web","version":"1.0.0","lockfileVersion":3,"requires":true,"packages":{"":{"name":"web","version":"1.0.0"}}}`
	npmOnly   = map[string]string{"package.json": `{"name":"web","scripts":{"build":"node build.js"}}`, "package-lock.json": lock, "build.js": "", "src/app.js": ""}
	goOnly    = map[string]string{"go.mod": "module example.com/shop\n\ngo 1.22\n", "main.go": "package main\n\nfunc main() {}\n", "db/migrate/001.sql": "", "internal/x/x.go": "package x\n"}
	fullStack = map[string]string{
		"frontend/package.json":                  `{"name":"web","scripts":{"build":"vite build"}}`,
		"frontend/package-lock.json":             lock,
		"backend/go.mod":                         "module example.com/api\n\ngo 1.22\n",
		"backend/cmd/server/main.go":             "// Command server.\npackage main\n\nfunc main() {}\n",
		"backend/cmd/worker/main.go":             "package main\n\nfunc main() {}\n",
		"backend/tools/tools.go":                 "package tools\n",
		"backend/migrations/001.sql":             "",
		"docs/package.json":                      `{"name":"docs","scripts":{"serve":"x"}}`,
		"frontend/node_modules/dep/package.json": `{"name":"dep","scripts":{"build":"x"}}`,
		"compose.yaml":                           "services:\n  api: {image: api}\n  db: {image: postgres}\n",
	}
)

func repo(t *testing.T, name string, files map[string]string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), name)
	for p, content := range files {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestDetect(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  scaffold.Repo
	}{
		{"My Shop", npmOnly, scaffold.Repo{Name: "my-shop", NPM: []scaffold.NPM{{Dir: "", Lockfile: "package-lock.json", Build: true}}}},
		{"shop", goOnly, scaffold.Repo{Name: "shop", Go: []scaffold.GoMod{{Dir: "", Mains: []string{"."}}}, Migrations: []string{"db/migrate"}, RootGoMod: true}},
		{"restaurant", fullStack, scaffold.Repo{Name: "restaurant",
			NPM:     []scaffold.NPM{{Dir: "docs"}, {Dir: "frontend", Lockfile: "package-lock.json", Build: true}},
			Go:      []scaffold.GoMod{{Dir: "backend", Mains: []string{"cmd/server", "cmd/worker"}}},
			Compose: "compose.yaml", Services: []string{"api", "db"}, Migrations: []string{"backend/migrations"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := repo(t, tc.name, tc.files)
			got, err := scaffold.Detect(dir)
			if err != nil {
				t.Fatal(err)
			}
			tc.want.Dir = dir
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Detect =\n%+v\nwant\n%+v", got, tc.want)
			}
		})
	}
	if _, err := scaffold.Detect(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("a missing directory detected")
	}
	bad := repo(t, "bad", map[string]string{"package.json": "{"})
	if _, err := scaffold.Detect(bad); err == nil || !strings.Contains(err.Error(), "package.json is not valid JSON") {
		t.Errorf("bad package.json: %v", err)
	}
}

// TestInitShapesLoad: on each shape, the files are written, the config
// loads and validates, and what was found is in it.
func TestInitShapesLoad(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  []string // in stagecoach.yml
		comps []string
	}{
		{"npm-only", npmOnly, []string{"lockfile: package-lock.json", "install: npm ci", "manager: none"}, []string{"frontend"}},
		{"go-only", goOnly, []string{"go build -trimpath -o dist/go-only ./", "# migrations:", `#   watch: ["db/migrate/**"]`}, []string{"backend"}},
		{"full-stack", fullStack, []string{"lockfile: frontend/package-lock.json", "workdir: backend", "-o dist/server ./cmd/server", "-o dist/worker ./cmd/worker",
			"manager: compose", "file: deploy/compose.yaml", "restart: [api, db]", `#   watch: ["backend/migrations/**"]`}, []string{"frontend", "backend", "deploy"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := repo(t, tc.name, tc.files)
			r, err := scaffold.Detect(dir)
			if err != nil {
				t.Fatal(err)
			}
			if err := scaffold.Write(dir, scaffold.Files(r)); err != nil {
				t.Fatal(err)
			}
			cfg, err := config.Load(filepath.Join(dir, "stagecoach.yml"))
			if err != nil {
				t.Fatalf("the generated config does not load: %v\n%s", err, read(t, dir, "stagecoach.yml"))
			}
			var names []string
			for _, c := range cfg.Components {
				names = append(names, c.Name)
			}
			if !reflect.DeepEqual(names, tc.comps) || len(cfg.Environments) != 1 || cfg.Environments[0].Name != "production" {
				t.Errorf("components %q, environments %+v", names, cfg.Environments)
			}
			yml := read(t, dir, "stagecoach.yml")
			for _, w := range tc.want {
				if !strings.Contains(yml, w) {
					t.Errorf("stagecoach.yml lacks %q:\n%s", w, yml)
				}
			}
			if m := read(t, dir, "magefiles/stagecoach.go"); !strings.Contains(m, "//mage:import\n\t_ \"github.com/stagecoach/stagecoach/stages/targets\"") || !strings.HasPrefix(m, "//go:build mage\n") {
				t.Errorf("magefile:\n%s", m)
			}
			if m := read(t, dir, "mage.go"); !strings.HasPrefix(m, "//go:build ignore\n") || !strings.Contains(m, "mage.Main()") {
				t.Errorf("mage.go:\n%s", m)
			}
			steps := strings.Join(scaffold.NextSteps(r), "\n")
			if !strings.Contains(steps, "go get github.com/stagecoach/stagecoach@latest") {
				t.Errorf("next steps:\n%s", steps)
			}
			if r.RootGoMod == strings.Contains(steps, "go mod init") {
				t.Errorf("next steps with a root go.mod %v:\n%s", r.RootGoMod, steps)
			}
		})
	}
}

func TestInitNeverOverwrites(t *testing.T) {
	dir := repo(t, "shop", map[string]string{"mage.go": "// mine\n", "package.json": `{"scripts":{"build":"x"}}`})
	r, err := scaffold.Detect(dir)
	if err != nil {
		t.Fatal(err)
	}
	err = scaffold.Write(dir, scaffold.Files(r))
	var exists *scaffold.ExistsError
	if !errors.As(err, &exists) || !reflect.DeepEqual(exists.Paths, []string{"mage.go"}) || !strings.Contains(err.Error(), "mage.go already exist") {
		t.Fatalf("Write = %v", err)
	}
	if read(t, dir, "mage.go") != "// mine\n" {
		t.Error("mage.go overwritten")
	}
	for _, p := range []string{"stagecoach.yml", "magefiles"} {
		if _, err := os.Stat(filepath.Join(dir, p)); err == nil {
			t.Errorf("%s written beside a refusal", p)
		}
	}
}

func TestNextStepsWithoutLockfile(t *testing.T) {
	dir := repo(t, "web", map[string]string{"web/package.json": `{"scripts":{"build":"x"}}`})
	r, _ := scaffold.Detect(dir)
	steps := strings.Join(scaffold.NextSteps(r), "\n")
	for _, want := range []string{"web/package.json has no lockfile", "go mod init web", "add web/dist/ .stagecoach/ to .gitignore"} {
		if !strings.Contains(steps, want) {
			t.Errorf("next steps lack %q:\n%s", want, steps)
		}
	}
	if yml := scaffold.Config(r); !strings.Contains(yml, "install: npm install") || strings.Contains(yml, "lockfile:") {
		t.Errorf("config:\n%s", yml)
	}
}

func read(t *testing.T, dir, p string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(p)))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
