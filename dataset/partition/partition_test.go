package partition_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"unsafe"

	"github.com/stratus-ml/stratus/blob/fileblob"
	"github.com/stratus-ml/stratus/dataset"
	"github.com/stratus-ml/stratus/dataset/partition"
)

// randomRows makes n rows with up to maxNNZ entries below maxIdx; ones makes
// every value 1.
func randomRows(seed uint64, n, maxNNZ int, maxIdx uint32, ones bool) []dataset.Row {
	rng := rand.New(rand.NewPCG(seed, 1))
	rows := make([]dataset.Row, n)
	for i := range rows {
		r := &rows[i]
		r.Label = float32(rng.IntN(2))
		k := rng.IntN(maxNNZ + 1)
		seen := map[uint32]bool{}
		for len(r.Indices) < k {
			ix := rng.Uint32N(maxIdx)
			if !seen[ix] {
				seen[ix] = true
				r.Indices = append(r.Indices, ix)
			}
		}
		sortU32(r.Indices)
		for range r.Indices {
			v := float32(1)
			if !ones {
				v = float32(rng.NormFloat64())
			}
			r.Values = append(r.Values, v)
		}
	}
	return rows
}

func sortU32(xs []uint32) {
	for i := 1; i < len(xs); i++ {
		for j := i; j > 0 && xs[j] < xs[j-1]; j-- {
			xs[j], xs[j-1] = xs[j-1], xs[j]
		}
	}
}

// write runs rows through a Writer and returns the encoded partitions.
func write(t testing.TB, rows []dataset.Row, target int) ([][]byte, []partition.Part) {
	t.Helper()
	var objs [][]byte
	w := partition.NewWriter(func(seq int, data []byte) (string, error) {
		if seq != len(objs) {
			t.Fatalf("flush seq %d, want %d", seq, len(objs))
		}
		objs = append(objs, append([]byte(nil), data...))
		return fmt.Sprintf("p%d", seq), nil
	}, target)
	for i := range rows {
		if err := w.Add(&rows[i]); err != nil {
			t.Fatal(err)
		}
	}
	parts, err := w.Close()
	if err != nil {
		t.Fatal(err)
	}
	return objs, parts
}

func sameRow(label float32, idx []uint32, val []float32, want *dataset.Row) bool {
	if label != want.Label || len(idx) != len(want.Indices) {
		return false
	}
	for k := range idx {
		v := float32(1)
		if val != nil {
			v = val[k]
		}
		if idx[k] != want.Indices[k] || v != want.Values[k] {
			return false
		}
	}
	return true
}

func TestRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name      string
		rows      []dataset.Row
		target    int
		width     int
		allOnes   bool
		wantParts int
	}{
		{"binary, small indices", randomRows(1, 3000, 30, 123, true), 32 << 10, 2, true, 0},
		{"real values, wide indices", randomRows(2, 3000, 40, 1<<22, false), 64 << 10, 4, false, 0},
		{"one partition", randomRows(3, 100, 10, 1000, false), partition.DefaultTarget, 2, false, 1},
		{"index 65535 still narrow", []dataset.Row{{Label: 1, Indices: []uint32{65535}, Values: []float32{1}}}, 0, 2, true, 1},
		{"index 65536 is wide", []dataset.Row{{Label: 1, Indices: []uint32{65536}, Values: []float32{2}}}, 0, 4, false, 1},
		{"empty rows", make([]dataset.Row, 10), 0, 2, true, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			objs, parts := write(t, tc.rows, tc.target)
			if tc.wantParts > 0 && len(parts) != tc.wantParts {
				t.Errorf("%d partitions, want %d", len(parts), tc.wantParts)
			}
			target := tc.target
			if target == 0 {
				target = partition.DefaultTarget
			}
			next := 0
			for i, data := range objs {
				if parts[i].Key != fmt.Sprintf("p%d", i) || parts[i].Seq != i || parts[i].Bytes != len(data) {
					t.Errorf("part %d: %+v", i, parts[i])
				}
				if len(data) > target && parts[i].Rows > 1 {
					t.Errorf("partition %d is %d bytes, over the %d target", i, len(data), target)
				}
				if i < len(objs)-1 && len(data) < target*8/10 {
					t.Errorf("partition %d is only %d bytes of a %d target", i, len(data), target)
				}
				p, err := partition.Decode(data)
				if err != nil {
					t.Fatalf("partition %d: %v", i, err)
				}
				if p.IndexWidth() != tc.width || p.AllOnes() != tc.allOnes {
					t.Errorf("partition %d: width %d all-ones %v; want %d %v", i, p.IndexWidth(), p.AllOnes(), tc.width, tc.allOnes)
				}
				if p.Rows() != parts[i].Rows || p.NNZ() != parts[i].NNZ || p.Features() != parts[i].Features || p.Size() != len(data) {
					t.Errorf("partition %d: rows %d nnz %d features %d; Part says %+v", i, p.Rows(), p.NNZ(), p.Features(), parts[i])
				}
				for r := 0; r < p.Rows(); r++ {
					label, idx, val := p.Row(r)
					if !sameRow(label, idx, val, &tc.rows[next]) {
						t.Fatalf("partition %d row %d differs from input row %d", i, r, next)
					}
					next++
				}
			}
			if next != len(tc.rows) {
				t.Errorf("read back %d rows, wrote %d", next, len(tc.rows))
			}
		})
	}
}

func TestBatchesAreViews(t *testing.T) {
	rows := randomRows(4, 1000, 20, 1<<20, false)
	data, err := partition.Encode(rows)
	if err != nil {
		t.Fatal(err)
	}
	p, err := partition.Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	inData := func(ptr unsafe.Pointer) bool {
		a := uintptr(unsafe.Pointer(&data[0]))
		return uintptr(ptr) >= a && uintptr(ptr) < a+uintptr(len(data))
	}
	for lo := 0; lo < p.Rows(); lo += 64 {
		hi := min(lo+64, p.Rows())
		b := p.Batch(lo, hi)
		if b.Len() != hi-lo {
			t.Fatalf("Batch(%d,%d).Len() = %d", lo, hi, b.Len())
		}
		if !inData(unsafe.Pointer(&b.Labels[0])) || (b.NNZ() > 0 && (!inData(unsafe.Pointer(&b.Indices[0])) || !inData(unsafe.Pointer(&b.Values[0])))) {
			t.Fatal("batch slices are copies, not views into the partition's buffer")
		}
		for i := 0; i < b.Len(); i++ {
			idx, val := b.Row(i)
			if !sameRow(b.Labels[i], idx, val, &rows[lo+i]) {
				t.Fatalf("batch [%d,%d) row %d differs", lo, hi, i)
			}
		}
	}
	// Appending to a view must not overwrite the next row.
	_, idx, _ := p.Row(0)
	_ = append(idx, 999999)
	if _, idx1, _ := p.Row(1); len(rows[1].Indices) > 0 && idx1[0] != rows[1].Indices[0] {
		t.Error("appending to a row view clobbered the next row")
	}
}

func TestDecodeUnalignedAndEmpty(t *testing.T) {
	rows := randomRows(5, 200, 10, 1<<20, false)
	data, _ := partition.Encode(rows)
	buf := make([]byte, len(data)+1)
	copy(buf[1:], data)
	p, err := partition.Decode(buf[1:]) // not 4-byte aligned: decoded by copying
	if err != nil {
		t.Fatal(err)
	}
	for r := range rows {
		if label, idx, val := p.Row(r); !sameRow(label, idx, val, &rows[r]) {
			t.Fatalf("unaligned decode: row %d differs", r)
		}
	}
	empty, err := partition.Encode(nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err = partition.Decode(empty)
	if err != nil || p.Rows() != 0 || p.NNZ() != 0 || p.Batch(0, 0).Len() != 0 {
		t.Errorf("empty partition: %v", err)
	}
}

func TestCorruptPartitions(t *testing.T) {
	rows := randomRows(6, 300, 15, 5000, false)
	data, _ := partition.Encode(rows)
	// Every truncation.
	for n := 0; n < len(data); n += 1 + n/50 {
		_, err := partition.Decode(data[:n])
		if !errors.Is(err, partition.ErrCorrupt) {
			t.Fatalf("truncated to %d bytes: %v", n, err)
		}
		if n >= 40 && !strings.Contains(err.Error(), "truncated") {
			t.Errorf("truncated to %d bytes: %v does not say truncated", n, err)
		}
	}
	// Flipped bits anywhere.
	for pos := 0; pos < len(data); pos += 1 + pos/20 {
		bad := append([]byte(nil), data...)
		bad[pos] ^= 0x10
		if _, err := partition.Decode(bad); !errors.Is(err, partition.ErrCorrupt) {
			t.Fatalf("bit flipped at byte %d: %v", pos, err)
		}
	}
	bad := append([]byte(nil), data...)
	bad[len(bad)-1] ^= 1
	if _, err := partition.Decode(bad); err == nil || !strings.Contains(err.Error(), "checksum mismatch") {
		t.Errorf("corrupted body: %v", err)
	}
	if _, err := partition.Decode(append(append([]byte(nil), data...), 0)); !errors.Is(err, partition.ErrCorrupt) {
		t.Errorf("trailing byte: %v", err)
	}
	if _, err := partition.Decode([]byte("1 1:1 2:1\n-1 3:1\n" + strings.Repeat(" ", 40))); err == nil || !strings.Contains(err.Error(), "not a Stratus partition") {
		t.Errorf("text file: %v", err)
	}
}

func TestStoreWriterAndRead(t *testing.T) {
	ctx := context.Background()
	st, _ := fileblob.New(t.TempDir())
	rows := randomRows(7, 2000, 20, 1000, false)
	w := partition.NewStoreWriter(ctx, st, "run1/load/", 16<<10)
	for i := range rows {
		if err := w.Add(&rows[i]); err != nil {
			t.Fatal(err)
		}
	}
	parts, err := w.Close()
	if err != nil {
		t.Fatal(err)
	}
	if len(parts) < 2 || parts[0].Key != "run1/load/part-00000" || parts[1].Key != partition.KeyFor("run1/load/", 1) {
		t.Fatalf("parts %+v", parts)
	}
	total := 0
	for _, pt := range parts {
		p, err := partition.Read(ctx, st, pt.Key)
		if err != nil {
			t.Fatal(err)
		}
		total += p.Rows()
	}
	if total != len(rows) {
		t.Errorf("read %d rows, wrote %d", total, len(rows))
	}

	// A damaged object: the error names it and says what happened.
	rc, _ := st.Get(ctx, parts[0].Key)
	var buf bytes.Buffer
	buf.ReadFrom(rc)
	rc.Close()
	data := buf.Bytes()
	data[len(data)/2] ^= 0xff
	st.Put(ctx, "run1/load/damaged", bytes.NewReader(data))
	_, err = partition.Read(ctx, st, "run1/load/damaged")
	if !errors.Is(err, partition.ErrCorrupt) || !strings.Contains(err.Error(), st.URI("run1/load/damaged")) || !strings.Contains(err.Error(), "checksum") {
		t.Errorf("damaged partition: %v", err)
	}
	st.Put(ctx, "run1/load/short", bytes.NewReader(buf.Bytes()[:100]))
	_, err = partition.Read(ctx, st, "run1/load/short")
	if !errors.Is(err, partition.ErrCorrupt) || !strings.Contains(err.Error(), st.URI("run1/load/short")) || !strings.Contains(err.Error(), "truncated") {
		t.Errorf("truncated partition: %v", err)
	}
	if _, err := partition.Read(ctx, st, "run1/load/missing"); err == nil || !strings.Contains(err.Error(), "run1/load/missing") {
		t.Errorf("missing partition: %v", err)
	}
}

func TestWriterRejectsBadRows(t *testing.T) {
	w := partition.NewWriter(func(int, []byte) (string, error) { return "", nil }, 0)
	if err := w.Add(&dataset.Row{Indices: []uint32{3, 2}, Values: []float32{1, 1}}); err == nil {
		t.Error("unsorted indices accepted")
	}
	if err := w.Add(&dataset.Row{Indices: []uint32{3, 3}, Values: []float32{1, 1}}); err == nil {
		t.Error("duplicate indices accepted")
	}
	if err := w.Add(&dataset.Row{Indices: []uint32{3}, Values: nil}); err == nil {
		t.Error("mismatched lengths accepted")
	}
	boom := errors.New("disk full")
	w = partition.NewWriter(func(int, []byte) (string, error) { return "", boom }, 0)
	w.Add(&dataset.Row{Label: 1})
	if _, err := w.Close(); !errors.Is(err, boom) {
		t.Errorf("flush error lost: %v", err)
	}
}
