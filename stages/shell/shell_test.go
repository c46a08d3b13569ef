package shell

import (
	"strings"
	"testing"
)

func TestTailBuffer(t *testing.T) {
	var tb Tail
	for i := 0; i < 25; i++ {
		tb.Write([]byte("l\n"))
	}
	tb.Write([]byte("partial"))
	lines := strings.Split(tb.String(), "\n")
	if len(lines) != TailLines || lines[len(lines)-1] != "partial" {
		t.Errorf("tail = %q", lines)
	}
}
