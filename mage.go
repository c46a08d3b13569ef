//go:build ignore

// Zero-install bootstrap: `go run mage.go <target>` runs this repository's
// Mage targets with nothing but Go installed.
package main

import (
	"os"

	"github.com/magefile/mage/mage"
)

func main() { os.Exit(mage.Main()) }
