package ui

import (
	"io"
	"strings"
	"text/tabwriter"
)

// Table writes rows under a header as aligned columns, the way the deploy
// summary and the change plan are shown.
func Table(w io.Writer, header []string, rows [][]string) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	io.WriteString(tw, strings.Join(header, "\t")+"\n")
	rule := make([]string, len(header))
	for i, h := range header {
		rule[i] = strings.Repeat("-", len(h))
	}
	io.WriteString(tw, strings.Join(rule, "\t")+"\n")
	for _, row := range rows {
		io.WriteString(tw, strings.Join(row, "\t")+"\n")
	}
	return tw.Flush()
}

// Or is s, or def when s is empty: "-" in a table cell, "none" in a line.
func Or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
