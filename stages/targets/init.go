package targets

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/stagecoach/stagecoach/stages/exitcode"
	"github.com/stagecoach/stagecoach/stages/scaffold"
)

// Init looks at the repository and writes stagecoach.yml, magefiles/stagecoach.go and mage.go (never over one).
func Init(ctx context.Context,
	dir *string, // the repository (default: the working directory)
) error {
	d := "."
	if dir != nil && *dir != "" {
		d = *dir
	}
	return initRepo(d, os.Stdout)
}

// initRepo is Init writing what it did and what to do next to out.
func initRepo(dir string, out io.Writer) error {
	repo, err := scaffold.Detect(dir)
	if err != nil {
		return exitcode.With(exitcode.BadConfig, err)
	}
	files := scaffold.Files(repo)
	if err := scaffold.Write(repo.Dir, files); err != nil {
		return exitcode.With(exitcode.BadConfig, err)
	}
	var found []string
	for _, n := range repo.NPM {
		lock := n.Lockfile
		if lock == "" {
			lock = "no lockfile"
		}
		found = append(found, fmt.Sprintf("npm package in %s (%s)", orRoot(n.Dir), lock))
	}
	for _, m := range repo.Go {
		found = append(found, fmt.Sprintf("Go module in %s (main packages: %s)", orRoot(m.Dir), strings.Join(m.Mains, ", ")))
	}
	if repo.Compose != "" {
		found = append(found, fmt.Sprintf("%s (services: %s)", repo.Compose, strings.Join(repo.Services, ", ")))
	}
	for _, m := range repo.Migrations {
		found = append(found, "migrations in "+m)
	}
	if len(found) == 0 {
		found = []string{"nothing to build"}
	}
	fmt.Fprintf(out, "found: %s\n", strings.Join(found, "; "))
	for _, f := range files {
		fmt.Fprintf(out, "wrote %s\n", f.Path)
	}
	fmt.Fprintln(out, "next:")
	for i, s := range scaffold.NextSteps(repo) {
		fmt.Fprintf(out, "  %d. %s\n", i+1, s)
	}
	return nil
}

func orRoot(dir string) string {
	if dir == "" {
		return "the root"
	}
	return dir + "/"
}
