package ui

import (
	"bytes"
	"strings"
	"testing"
)

func TestHeld(t *testing.T) {
	var out bytes.Buffer
	log := New(&out, false)
	log.AddSecret("hunter22")
	held := log.Hold()
	held.Infof("ahead: password hunter22")
	if out.Len() != 0 {
		t.Fatalf("a held line was written: %q", out.String())
	}
	log.Infof("meanwhile")
	held.Release()
	held.Infof("after")
	got := out.String()
	want := []string{"meanwhile", "ahead: password ***", "after"}
	last := -1
	for _, w := range want {
		i := strings.Index(got, w)
		if i < 0 || i < last {
			t.Fatalf("log %q: want %q in this order", got, want)
		}
		last = i
	}
	if strings.Contains(got, "hunter22") {
		t.Errorf("secret in the log: %q", got)
	}
	dropped := log.Hold()
	dropped.Warnf("never shown")
	if strings.Contains(out.String(), "never shown") {
		t.Errorf("an unreleased line was written")
	}
}
