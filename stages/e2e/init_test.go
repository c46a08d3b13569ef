package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stagecoach/stagecoach/stages/pipeline"
	"github.com/stagecoach/stagecoach/stages/scaffold"
	"github.com/stagecoach/stagecoach/stages/testenv"
	"github.com/stagecoach/stagecoach/stages/ui"
)

// TestInitThenDeploy: mage init's config for a Go-only repository, with
// only its hosts and root filled in, deploys to a real sshd.
func TestInitThenDeploy(t *testing.T) {
	host := testenv.StartSSHD(t)
	testenv.RequireTool(t, "git", "apt-get install -y git")
	dir := filepath.Join(t.TempDir(), "shop")
	for p, content := range map[string]string{
		"go.mod":  "module example.com/shop\n\ngo 1.22\n",
		"main.go": "package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\"shop\") }\n",
	} {
		os.MkdirAll(filepath.Dir(filepath.Join(dir, p)), 0o755)
		if err := os.WriteFile(filepath.Join(dir, p), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	r, err := scaffold.Detect(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := scaffold.Write(dir, scaffold.Files(r)); err != nil {
		t.Fatal(err)
	}

	// Fill in the environment as the comments say: hosts, root, ssh.
	root := filepath.Join(t.TempDir(), "srv")
	yml := readFile(t, filepath.Join(dir, "stagecoach.yml"))
	for old, new := range map[string]string{
		`hosts: ["deploy@app.example.com"]`: fmt.Sprintf("hosts: [%q]", host.Target()),
		"root: /srv/shop":                   "root: " + root,
		"    # ssh: { known_hosts: deploy/known_hosts, identities: [deploy/id_ed25519], proxy_jump: bastion.example.com }": fmt.Sprintf(
			"    ssh: { known_hosts: %q, identities: [%q], config: none }", host.KnownHostsFile, host.IdentityFile),
	} {
		if !strings.Contains(yml, old) {
			t.Fatalf("the generated config lacks %q:\n%s", old, yml)
		}
		yml = strings.Replace(yml, old, new, 1)
	}
	if err := os.WriteFile(filepath.Join(dir, "stagecoach.yml"), []byte(yml), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ".gitignore"), []byte("dist/\n.stagecoach/\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"init", "-q", "-b", "main"}, {"-c", "user.email=t@example.com", "-c", "user.name=T", "add", "-A"},
		{"-c", "user.email=t@example.com", "-c", "user.name=T", "commit", "-qm", "init"}} {
		if out, err := exec.Command("git", append([]string{"-C", dir}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}

	out := &testenv.SyncBuffer{}
	run, err := pipeline.Open(pipeline.Options{ConfigPath: filepath.Join(dir, "stagecoach.yml")}, ui.New(out, true))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := run.Deploy(ctx); err != nil {
		t.Fatalf("deploy: %v\n%s", err, out)
	}
	id := live(t, root)
	bin := filepath.Join(root, "current", "backend", "shop")
	if got, err := exec.Command(bin).Output(); err != nil || strings.TrimSpace(string(got)) != "shop" {
		t.Errorf("release %s: %s printed %q, %v", id, bin, got, err)
	}
}
