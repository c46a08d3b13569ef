// Package scaffold is mage init's work: it looks at a repository and
// writes the three files a project needs to deploy with Stagecoach
// (stagecoach.yml, magefiles/stagecoach.go and mage.go), never
// overwriting one, and says what to do next.
package scaffold

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// Repo is what Detect found in a repository. Paths are slash-separated,
// relative to the repository's root ("" for the root itself).
type Repo struct {
	Dir        string
	Name       string   // the app's name: the directory's, made safe
	NPM        []NPM    // packages with a package.json
	Go         []GoMod  // Go modules with a main package
	Compose    string   // compose.yaml, docker-compose.yml ...; "" when none
	Services   []string // the compose file's services, sorted
	Migrations []string // migration directories
	RootGoMod  bool     // a go.mod at the root, where the magefile's module is
}

// NPM is one npm package.
type NPM struct {
	Dir      string
	Lockfile string // package-lock.json, npm-shrinkwrap.json, yarn.lock or pnpm-lock.yaml; "" when none
	Build    bool   // package.json has a build script
}

// GoMod is one Go module with main packages.
type GoMod struct {
	Dir   string
	Mains []string // module-relative package directories ("." or "cmd/server")
}

// skipDirs are never looked into.
var skipDirs = map[string]bool{".git": true, "node_modules": true, "vendor": true, "dist": true, "build": true,
	".stagecoach": true, "magefiles": true, "testdata": true, ".venv": true, "target": true}

// composeFiles are the names docker compose looks for, in its order.
var composeFiles = []string{"compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml"}

// maxDepth bounds how deep Detect looks: components sit at the root or
// one or two levels below it.
const maxDepth = 3

// Detect looks at the repository in dir.
func Detect(dir string) (Repo, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return Repo{}, err
	}
	info, err := os.Stat(abs)
	if err != nil {
		return Repo{}, fmt.Errorf("look at the repository: %w", err)
	}
	if !info.IsDir() {
		return Repo{}, fmt.Errorf("look at the repository: %s is not a directory", abs)
	}
	r := Repo{Dir: abs, Name: appName(filepath.Base(abs))}
	err = filepath.WalkDir(abs, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(abs, p)
		rel = filepath.ToSlash(rel)
		if rel == "." {
			rel = ""
		}
		if d.IsDir() {
			if rel != "" && (skipDirs[d.Name()] || strings.Count(rel, "/")+1 > maxDepth) {
				return filepath.SkipDir
			}
			if isMigrations(rel) {
				r.Migrations = append(r.Migrations, rel)
			}
			return nil
		}
		dirRel := path.Dir(rel)
		if dirRel == "." {
			dirRel = ""
		}
		switch d.Name() {
		case "package.json":
			n, err := npmPackage(abs, dirRel)
			if err != nil {
				return err
			}
			r.NPM = append(r.NPM, n)
		case "go.mod":
			if dirRel == "" {
				r.RootGoMod = true
			}
			if mains := goMains(filepath.Join(abs, filepath.FromSlash(dirRel))); len(mains) > 0 {
				r.Go = append(r.Go, GoMod{Dir: dirRel, Mains: mains})
			}
		}
		return nil
	})
	if err != nil {
		return Repo{}, fmt.Errorf("look at the repository: %w", err)
	}
	for _, name := range composeFiles {
		if _, err := os.Stat(filepath.Join(abs, name)); err == nil {
			r.Compose = name
			if r.Services, err = composeServices(filepath.Join(abs, name)); err != nil {
				return Repo{}, err
			}
			break
		}
	}
	return r, nil
}

// isMigrations reports whether a directory holds database migrations by
// its name: migrations, migrate, db/migrate.
func isMigrations(rel string) bool {
	base := path.Base(rel)
	return base == "migrations" || base == "migration" || rel == "db/migrate" || strings.HasSuffix(rel, "/db/migrate")
}

// lockfiles are the lockfiles of npm, yarn and pnpm, in that order.
var lockfiles = []string{"package-lock.json", "npm-shrinkwrap.json", "yarn.lock", "pnpm-lock.yaml"}

func npmPackage(root, dir string) (NPM, error) {
	n := NPM{Dir: dir}
	file := filepath.Join(root, filepath.FromSlash(dir), "package.json")
	data, err := os.ReadFile(file)
	if err != nil {
		return n, err
	}
	var pkg struct {
		Scripts map[string]string `json:"scripts"`
	}
	if err := json.Unmarshal(data, &pkg); err != nil {
		return n, fmt.Errorf("%s is not valid JSON: %v", file, err)
	}
	_, n.Build = pkg.Scripts["build"]
	for _, lf := range lockfiles {
		if _, err := os.Stat(filepath.Join(root, filepath.FromSlash(dir), lf)); err == nil {
			n.Lockfile = lf
			break
		}
	}
	return n, nil
}

// goMains lists a module's main packages: its root and the directories
// under cmd/ whose Go files say package main.
func goMains(mod string) []string {
	var mains []string
	if isMain(mod) {
		mains = append(mains, ".")
	}
	entries, _ := os.ReadDir(filepath.Join(mod, "cmd"))
	for _, e := range entries {
		if e.IsDir() && isMain(filepath.Join(mod, "cmd", e.Name())) {
			mains = append(mains, "cmd/"+e.Name())
		}
	}
	return mains
}

func isMain(dir string) bool {
	files, _ := filepath.Glob(filepath.Join(dir, "*.go"))
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(data), "\n") {
			if strings.HasPrefix(line, "package ") {
				if strings.TrimSpace(strings.TrimPrefix(line, "package ")) == "main" {
					return true
				}
				break
			}
		}
	}
	return false
}

func composeServices(file string) ([]string, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var doc struct {
		Services map[string]any `yaml:"services"`
	}
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%s: %v", file, err)
	}
	var names []string
	for n := range doc.Services {
		names = append(names, n)
	}
	sort.Strings(names)
	if len(names) == 0 {
		return nil, errors.New(file + " defines no services")
	}
	return names, nil
}

// appName makes a directory's name an app name: letters, digits, - and _.
func appName(base string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(base) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-', r == '_':
			b.WriteRune(r)
		default:
			b.WriteRune('-')
		}
	}
	if s := strings.Trim(b.String(), "-"); s != "" {
		return s
	}
	return "app"
}
