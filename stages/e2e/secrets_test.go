package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stagecoach/stagecoach/stages/pipeline"
	"github.com/stagecoach/stagecoach/stages/testenv"
)

// TestSecretsNeverPrinted: a secret read from the deploying machine's .env
// reaches the server's shared/.env (owner-only) and the commands that use
// it, but never the log, the JSON report or the server's deploy history,
// even when a failing command prints it.
func TestSecretsNeverPrinted(t *testing.T) {
	const secret = "tok-5f2b9c71e0d4a8"
	host := testenv.StartSSHD(t)
	p := testenv.NewProject(t, testenv.ProjectOptions{
		Hosts: []*testenv.Host{host},
		Environment: `    env:
      vars: { APP_MODE: test }
      secrets: [API_TOKEN]
`,
	})
	// The env file is the developer's own: ignored by git, so the tree
	// stays clean.
	p.Write(".gitignore", "node_modules/\ndist/\n.stagecoach/\n.env\n")
	p.Write(".env", "# local secrets\nAPI_TOKEN="+secret+"\n")
	p.Commit("ignore .env")

	first := mustDeploy(t, p)
	env := filepath.Join(p.Root, "shared", ".env")
	info, err := os.Stat(env)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 || !strings.Contains(readFile(t, env), secret) {
		t.Fatalf("shared/.env: mode %v, content %q", info.Mode().Perm(), readFile(t, env))
	}
	assertNoSecret(t, secret, "first deploy's log", first.log)

	// A migration that prints the secret and fails: the error carries its
	// stderr, which must come out masked everywhere.
	p.Write("stagecoach.yml", strings.Replace(readFile(t, p.Config),
		"run: ./backend/server migrate -db data/restaurant.sqlite3",
		`run: 'echo "connecting with token $API_TOKEN" >&2; exit 3'`, 1))
	p.Write("backend/migrations/0003_noop.sql", "SELECT 1;\n")
	p.Commit("a migration that leaks")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	res := deploy(t, ctx, p, pipeline.Options{})
	if res.err == nil || !strings.Contains(res.err.Error(), "connecting with token ***") {
		t.Fatalf("want the migration's failure with the token masked, got %v\n%s", res.err, res.log)
	}
	assertNoSecret(t, secret, "the error", res.err.Error())
	assertNoSecret(t, secret, "the failed deploy's log", res.log)
	assertNoSecret(t, secret, "the report", readFile(t, filepath.Join(p.Dir, pipeline.ReportsDir, res.run.Plan.Release+".json")))
	assertNoSecret(t, secret, "the server's state", readFile(t, filepath.Join(p.Root, ".stagecoach", "state.json")))
}

func assertNoSecret(t *testing.T, secret, where, text string) {
	t.Helper()
	if strings.Contains(text, secret) {
		t.Errorf("%s contains the secret:\n%s", where, text)
	}
}
