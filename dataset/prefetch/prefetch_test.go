package prefetch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/stratus-ml/stratus/blob"
	"github.com/stratus-ml/stratus/blob/fileblob"
	"github.com/stratus-ml/stratus/dataset"
	"github.com/stratus-ml/stratus/dataset/partition"
)

// writeParts writes parts partitions of rows rows each; row r of partition p has
// label (p*rows+r)%2 and one feature p*rows+r.
func writeParts(t *testing.T, st blob.Store, parts, rows int) []string {
	t.Helper()
	var keys []string
	for p := 0; p < parts; p++ {
		var rs []dataset.Row
		for r := 0; r < rows; r++ {
			id := p*rows + r
			rs = append(rs, dataset.Row{Label: float32(id % 2), Indices: []uint32{uint32(id)}, Values: []float32{float32(id)}})
		}
		data, err := partition.Encode(rs)
		if err != nil {
			t.Fatal(err)
		}
		key := fmt.Sprintf("p/%03d", p)
		if err := st.Put(context.Background(), key, bytes.NewReader(data)); err != nil {
			t.Fatal(err)
		}
		keys = append(keys, key)
	}
	return keys
}

func TestIteratorOrderAndResume(t *testing.T) {
	st, err := fileblob.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	keys := writeParts(t, st, 5, 23)
	var all []uint32
	var positions [][2]int
	it := New(context.Background(), st, keys, Options{Minibatch: 10})
	for {
		p, r := it.Position()
		b, err := it.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if b.Len() == 0 || b.Len() > 10 {
			t.Fatalf("batch of %d rows", b.Len())
		}
		positions = append(positions, [2]int{p, r})
		all = append(all, b.Indices...)
	}
	it.Close()
	if len(all) != 5*23 {
		t.Fatalf("%d rows, want %d", len(all), 5*23)
	}
	for i, f := range all {
		if f != uint32(i) {
			t.Fatalf("row %d has feature %d: order lost", i, f)
		}
	}
	// Resuming at any recorded position continues with exactly the rest.
	for _, pos := range positions {
		it := New(context.Background(), st, keys, Options{Minibatch: 10, StartPartition: pos[0], StartRow: pos[1]})
		b, err := it.Next()
		if err != nil {
			t.Fatal(err)
		}
		want := uint32(pos[0]*23 + pos[1])
		if b.Indices[0] != want {
			t.Fatalf("resume at %v starts with row %d, want %d", pos, b.Indices[0], want)
		}
		it.Close()
	}
}

func TestIteratorCorruptPartition(t *testing.T) {
	st, _ := fileblob.New(t.TempDir())
	keys := writeParts(t, st, 3, 5)
	if err := st.Put(context.Background(), keys[1], bytes.NewReader([]byte("STRP garbage"))); err != nil {
		t.Fatal(err)
	}
	it := New(context.Background(), st, keys, Options{Minibatch: 100})
	defer it.Close()
	if _, err := it.Next(); err != nil {
		t.Fatal(err)
	}
	_, err := it.Next()
	if !errors.Is(err, partition.ErrCorrupt) {
		t.Fatalf("err = %v, want corrupt partition", err)
	}
}

// TestIteratorCloseEarly stops mid-way; Close must return promptly with the fetcher
// blocked on a full buffer.
func TestIteratorCloseEarly(t *testing.T) {
	st, _ := fileblob.New(t.TempDir())
	keys := writeParts(t, st, 20, 5)
	it := New(context.Background(), st, keys, Options{Minibatch: 5, Buffer: 1})
	if _, err := it.Next(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { it.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close hung")
	}
}
