package ship

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// failAfter accepts n bytes, then fails every write.
type failAfter struct {
	n   int
	err error
}

func (f *failAfter) Write(p []byte) (int, error) {
	if len(p) > f.n {
		return 0, f.err
	}
	f.n -= len(p)
	return len(p), nil
}

func TestFanOutDropsFailedDestinations(t *testing.T) {
	data := make([]byte, 1<<20)
	for i := range data {
		data[i] = byte(i * 7)
	}
	broken := errors.New("disk full")
	lost := errors.New("connection lost")

	var first, last bytes.Buffer
	failing := &failAfter{n: 100 << 10, err: broken}
	// A pipe whose reader stops after a while, as a failed upload does:
	// once it is closed with the error, writes to it fail and the writer
	// must go on with the others rather than block.
	pr, pw := io.Pipe()
	read := make(chan []byte)
	go func() {
		got, _ := io.ReadAll(io.LimitReader(pr, 300<<10))
		pr.CloseWithError(lost)
		read <- got
	}()
	// A pipe read to the end gets every byte.
	whole, wholeW := io.Pipe()
	readWhole := make(chan []byte)
	go func() {
		got, _ := io.ReadAll(whole)
		readWhole <- got
	}()

	f := newFanOut(2, &first, failing, pw, wholeW, &last)
	for off := 0; off < len(data); off += 16 << 10 {
		chunk := data[off : off+16<<10]
		if n, err := f.Write(chunk); n != len(chunk) || err != nil {
			t.Fatalf("Write = %d, %v", n, err)
		}
		// The writer reuses its buffer: the fan-out must have copied it.
		clear(chunk)
	}
	errs := f.Close()
	wholeW.Close()

	want := []error{nil, broken, lost, nil, nil}
	for i, err := range errs {
		if !errors.Is(err, want[i]) {
			t.Errorf("destination %d: error %v, want %v", i, err, want[i])
		}
	}
	ref := make([]byte, len(data))
	for i := range ref {
		ref[i] = byte(i * 7)
	}
	if !bytes.Equal(first.Bytes(), ref) || !bytes.Equal(last.Bytes(), ref) {
		t.Errorf("buffers got %d and %d bytes, want all %d intact", first.Len(), last.Len(), len(ref))
	}
	if got := <-readWhole; !bytes.Equal(got, ref) {
		t.Errorf("pipe read to the end got %d bytes, want all %d intact", len(got), len(ref))
	}
	if got := <-read; !bytes.Equal(got, ref[:len(got)]) || len(got) != 300<<10 {
		t.Errorf("pipe closed early read %d bytes, want the first %d", len(got), 300<<10)
	}
}

func TestFanOutWithoutDestinations(t *testing.T) {
	f := newFanOut(4)
	if n, err := f.Write([]byte("abc")); n != 3 || err != nil {
		t.Fatalf("Write = %d, %v", n, err)
	}
	if errs := f.Close(); len(errs) != 0 {
		t.Errorf("Close = %v", errs)
	}
}
