package e2e

import (
	"flag"
	"fmt"
	"os"
	"testing"
)

// TestMain skips the package under -short: every test here deploys to a
// real sshd, nginx or Docker engine, and -short runs none of those.
func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		fmt.Println("e2e: skipped under -short (every test starts sshd, nginx or Docker)")
		os.Exit(0)
	}
	os.Exit(m.Run())
}
