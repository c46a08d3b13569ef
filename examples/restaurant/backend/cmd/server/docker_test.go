package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// needDocker skips the test when no Docker engine answers, except under CI,
// where a missing engine is a failure.
func needDocker(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("image test skipped in -short mode")
	}
	if err := exec.Command("docker", "version").Run(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI is set but no Docker engine answers (docker version: %v): install docker.io and start dockerd", err)
		}
		t.Skipf("no Docker engine (docker version: %v); install docker.io to run the image test", err)
	}
}

func docker(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("docker", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// TestImage builds the FROM-scratch image around a static binary, migrates
// a volume with it and checks the served health endpoint and the
// in-container healthcheck command.
func TestImage(t *testing.T) {
	needDocker(t)
	appDir, err := filepath.Abs(filepath.Join("..", "..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	// Build the binary into a private context so the checkout's dist/ is untouched.
	ctxDir := t.TempDir()
	for _, f := range []string{"Dockerfile", ".dockerignore"} {
		b, err := os.ReadFile(filepath.Join(appDir, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(ctxDir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	build := exec.Command("go", "build", "-trimpath", "-o", filepath.Join(ctxDir, "backend", "dist", "server"), ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("static build: %v\n%s", err, out)
	}

	name := fmt.Sprintf("restaurant-image-test-%d", os.Getpid())
	image := name + ":test"
	docker(t, "build", "-q", "-t", image, ctxDir)
	t.Cleanup(func() { exec.Command("docker", "rmi", "-f", image).Run() })
	docker(t, "volume", "create", name)
	t.Cleanup(func() { exec.Command("docker", "volume", "rm", "-f", name).Run() })

	if out := docker(t, "run", "--rm", "-v", name+":/data", image, "migrate"); !strings.Contains(out, "applied 0002_allergens.sql") {
		t.Fatalf("migrate in the container said:\n%s", out)
	}
	docker(t, "run", "-d", "--name", name, "-v", name+":/data", "-e", "APP_VERSION=image-test",
		"-p", "127.0.0.1::8080", image)
	t.Cleanup(func() { exec.Command("docker", "rm", "-f", name).Run() })
	port := docker(t, "port", name, "8080/tcp")
	port = port[strings.LastIndex(port, ":")+1:]
	port, _, _ = strings.Cut(port, "\n")

	var h struct {
		Status, Version string
		Schema          int
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get("http://127.0.0.1:" + port + "/healthz")
		if err == nil {
			err = json.NewDecoder(resp.Body).Decode(&h)
			resp.Body.Close()
			if err == nil && resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			logs, _ := exec.Command("docker", "logs", name).CombinedOutput()
			t.Fatalf("no healthy answer from the container: %v\n%s", err, logs)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if h.Status != "ok" || h.Version != "image-test" || h.Schema != 2 {
		t.Fatalf("healthz = %+v", h)
	}
	docker(t, "exec", name, "/server", "healthcheck")
	docker(t, "stop", "-t", "10", name)
	if code := docker(t, "inspect", "--format", "{{.State.ExitCode}}", name); code != "0" {
		t.Fatalf("server exited with %s after docker stop, want 0", code)
	}
}
