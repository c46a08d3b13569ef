package e2e

import (
	"flag"
	"fmt"
	"os"
	"testing"
)

// TestMain skips the package under -short: every test here deploys to a
// real sshd, nginx or Docker engine, and -short runs none of those. Started
// by BenchmarkDeployComparison, it deploys once instead.
func TestMain(m *testing.M) {
	// BenchmarkDeployComparison starts this binary to deploy once.
	if os.Getenv(benchChildConfig) != "" {
		os.Exit(benchDeployChild())
	}
	flag.Parse()
	if testing.Short() {
		fmt.Println("e2e: skipped under -short (every test starts sshd, nginx or Docker)")
		os.Exit(0)
	}
	os.Exit(m.Run())
}
