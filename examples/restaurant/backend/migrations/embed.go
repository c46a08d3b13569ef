// Package migrations holds the restaurant database's schema changes, applied
// in order of their number by the migrate subcommand.
package migrations

import "embed"

// FS holds the numbered migration files (NNNN_name.sql).
//
//go:embed *.sql
var FS embed.FS
