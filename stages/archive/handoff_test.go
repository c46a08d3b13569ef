package archive

import (
	"bytes"
	"errors"
	"testing"
)

// failAfter is a writer that takes n bytes, then fails.
type failAfter struct {
	n   int
	got bytes.Buffer
}

var errFull = errors.New("no space left on device")

func (f *failAfter) Write(p []byte) (int, error) {
	if f.got.Len()+len(p) > f.n {
		return 0, errFull
	}
	return f.got.Write(p)
}

func TestHandoff(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789abcdef"), 1000) // 16000 bytes
	for _, tc := range []struct {
		name    string
		limit   int // what the writer takes before it fails; 0: all
		pieces  int // Writes the data is cut into
		wantErr bool
	}{
		{name: "one write", pieces: 1},
		{name: "many small writes", pieces: 1000},
		{name: "writes across chunks", pieces: 7},
		{name: "the writer fails", limit: 5000, pieces: 100, wantErr: true},
		{name: "the writer fails on the last chunk", limit: len(data) - 1, pieces: 3, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := &failAfter{n: tc.limit}
			if tc.limit == 0 {
				w.n = len(data)
			}
			h := newHandoff(w, 1024, 2)
			var writeErr error
			step := (len(data) + tc.pieces - 1) / tc.pieces
			for p := data; len(p) > 0 && writeErr == nil; {
				k := min(step, len(p))
				_, writeErr = h.Write(p[:k])
				p = p[k:]
			}
			err := h.Close()
			h.Abort() // after Close: nothing, as the archive's writer defers it
			if (err != nil) != tc.wantErr || (err != nil && !errors.Is(err, errFull)) {
				t.Fatalf("Close: %v, want failed %v", err, tc.wantErr)
			}
			if writeErr != nil && !errors.Is(writeErr, errFull) {
				t.Errorf("Write: %v", writeErr)
			}
			if !tc.wantErr && !bytes.Equal(w.got.Bytes(), data) {
				t.Errorf("wrote %d bytes, not the %d given", w.got.Len(), len(data))
			}
			if tc.wantErr && !bytes.Equal(w.got.Bytes(), data[:w.got.Len()]) {
				t.Error("what was written before the failure is not the data's start")
			}
		})
	}
}

// An aborted handoff writes nothing it was not given whole before.
func TestHandoffAbort(t *testing.T) {
	var got bytes.Buffer
	h := newHandoff(&got, 1024, 2)
	if _, err := h.Write(make([]byte, 100)); err != nil {
		t.Fatal(err)
	}
	h.Abort()
	if got.Len() != 0 {
		t.Errorf("an aborted handoff wrote %d bytes of a chunk it was never handed", got.Len())
	}
}
