package scaffold

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
)

// Module is the Go module a project's magefile imports.
const Module = "github.com/stagecoach/stagecoach"

// File is one file init writes.
type File struct {
	Path string // slash-separated, relative to the repository
	Data []byte
}

// Files are the files init writes for r: stagecoach.yml, the magefile and
// the zero-install bootstrap.
func Files(r Repo) []File {
	return []File{
		{"stagecoach.yml", []byte(Config(r))},
		{"magefiles/stagecoach.go", []byte(magefile)},
		{"mage.go", []byte(bootstrap)},
	}
}

const magefile = `//go:build mage

// Stagecoach's deploy targets for this repository: go run mage.go -l
// lists them, go run mage.go deploy deploys (see stagecoach.yml).
package main

import (
	//mage:import
	_ "` + Module + `/stages/targets"
)
`

const bootstrap = `//go:build ignore

// Zero-install bootstrap: go run mage.go <target> runs the Mage targets
// in magefiles/ with nothing but Go installed.
package main

import (
	"os"

	"github.com/magefile/mage/mage"
)

func main() { os.Exit(mage.Main()) }
`

// ExistsError refuses to write over files that are there already.
type ExistsError struct{ Paths []string }

func (e *ExistsError) Error() string {
	return fmt.Sprintf("%s already exist(s); init writes none of its files over one: move them aside or edit them by hand", strings.Join(e.Paths, ", "))
}

// Write writes files under dir, creating directories, but only when none
// of them exists: otherwise it writes nothing and returns an
// *ExistsError naming them.
func Write(dir string, files []File) error {
	var there []string
	for _, f := range files {
		if _, err := os.Lstat(filepath.Join(dir, filepath.FromSlash(f.Path))); err == nil {
			there = append(there, f.Path)
		} else if !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	if len(there) > 0 {
		return &ExistsError{Paths: there}
	}
	for _, f := range files {
		p := filepath.Join(dir, filepath.FromSlash(f.Path))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return fmt.Errorf("write %s: %w", f.Path, err)
		}
		// O_EXCL: a file that appeared since the check is not overwritten either.
		fh, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err != nil {
			return fmt.Errorf("write %s: %w", f.Path, err)
		}
		_, werr := fh.Write(f.Data)
		if cerr := fh.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			return fmt.Errorf("write %s: %w", f.Path, werr)
		}
	}
	return nil
}

// NextSteps is what init prints after writing the files.
func NextSteps(r Repo) []string {
	var out []string
	if r.RootGoMod {
		out = append(out, "add Stagecoach to go.mod: go get "+Module+"@latest && go mod tidy")
	} else {
		out = append(out, fmt.Sprintf("give the repository a Go module for the magefile: go mod init %s && go get %s@latest && go mod tidy", r.Name, Module))
	}
	out = append(out, "edit stagecoach.yml: the hosts and root of the production environment, its services and health checks (the comments say how)")
	for _, n := range r.NPM {
		if n.Lockfile == "" && n.Build {
			out = append(out, fmt.Sprintf("%s has no lockfile: run npm install there and commit package-lock.json, then use install: npm ci (repeatable, and rerun only when the lockfile changes)", join(n.Dir, "package.json")))
		}
	}
	if len(r.Migrations) > 0 {
		out = append(out, fmt.Sprintf("migrations in %s: uncomment the migrations block and give it the command that applies them", strings.Join(r.Migrations, ", ")))
	}
	var ignore []string
	for _, c := range components(r) {
		ignore = append(ignore, c.output+"/")
	}
	ignore = append(ignore, ".stagecoach/")
	out = append(out, "ignore what builds and deploys write: add "+strings.Join(ignore, " ")+" to .gitignore")
	out = append(out, "commit, then: go run mage.go -l (the targets), go run mage.go plan (what a deploy would do), go run mage.go deploy")
	return out
}

// component is one component of the generated config.
type component struct {
	name, watch, lockfile, install, build, workdir, output, note string
}

// components are r's deployable parts: each npm package with a build
// script, each Go module with main packages, and the compose file.
func components(r Repo) []component {
	var out []component
	used := map[string]bool{}
	name := func(dir, fallback string) string {
		n := fallback
		if dir != "" {
			n = appName(path.Base(dir))
		}
		base := n
		for i := 2; used[n]; i++ {
			n = base + strconv.Itoa(i)
		}
		used[n] = true
		return n
	}
	for _, p := range r.NPM {
		if !p.Build {
			continue
		}
		c := component{name: name(p.Dir, "frontend"), build: "npm run build", output: join(p.Dir, "dist"), workdir: p.Dir}
		c.watch = watchOf(p.Dir, `"package.json", "src/**", "public/**", "index.html"`)
		switch p.Lockfile {
		case "package-lock.json", "npm-shrinkwrap.json":
			c.install = "npm ci --prefer-offline --no-audit --no-fund"
		case "yarn.lock":
			c.install, c.build = "yarn install --frozen-lockfile", "yarn build"
		case "pnpm-lock.yaml":
			c.install, c.build = "pnpm install --frozen-lockfile", "pnpm run build"
		default:
			c.install = "npm install --no-audit --no-fund"
			c.note = "no lockfile found: commit package-lock.json and use npm ci"
		}
		if p.Lockfile != "" {
			c.lockfile = join(p.Dir, p.Lockfile)
		}
		c.note = strings.TrimSpace(c.note + "; output: where the build writes (dist for Vite, build for Create React App)")
		c.note = strings.TrimPrefix(c.note, "; ")
		out = append(out, c)
	}
	for _, m := range r.Go {
		c := component{name: name(m.Dir, "backend"), workdir: m.Dir, output: join(m.Dir, "dist")}
		c.watch = watchOf(m.Dir, `"**/*.go", "go.mod", "go.sum", "!**/*_test.go", "!magefiles/**"`)
		var builds []string
		for _, main := range m.Mains {
			bin := path.Base(main)
			if main == "." {
				bin = appName(path.Base(filepath.ToSlash(filepath.Join(r.Dir, m.Dir))))
			}
			builds = append(builds, fmt.Sprintf("go build -trimpath -o dist/%s ./%s", bin, strings.TrimPrefix(main, ".")))
		}
		c.build = "CGO_ENABLED=0 " + strings.Join(builds, " && CGO_ENABLED=0 ")
		out = append(out, c)
	}
	if r.Compose != "" {
		c := component{name: name("", "deploy"), watch: fmt.Sprintf("[%q]", r.Compose),
			build: fmt.Sprintf("rm -rf .deploy && mkdir .deploy && cp %s .deploy/", r.Compose), output: ".deploy",
			note: "the compose file goes into the release; copy what its build: contexts need too"}
		out = append(out, c)
	}
	return out
}

// watchOf is a component's watch list: everything under dir, or for the
// repository's root the given patterns.
func watchOf(dir, rootPatterns string) string {
	if dir == "" {
		return "[" + rootPatterns + "]"
	}
	return fmt.Sprintf("[%q, %q]", dir+"/**", "!"+dir+"/**/*.md")
}

func join(dir, p string) string {
	if dir == "" {
		return p
	}
	return dir + "/" + p
}
