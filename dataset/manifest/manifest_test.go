package manifest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stratus-ml/stratus/blob"
	"github.com/stratus-ml/stratus/blob/fileblob"
	"github.com/stratus-ml/stratus/dataset"
	"github.com/stratus-ml/stratus/dataset/partition"
)

func newStore(t *testing.T) blob.Store {
	t.Helper()
	st, err := fileblob.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestAffine(t *testing.T) {
	a := &Affine{}
	a.Add(1, 2, 0)
	a.Add(4, 0.5, -1)
	a.Add(70000, 3, 1)
	b := &Affine{}
	b.Add(0, 10, 0)
	b.Add(4, 2, 3)
	b.Add(70000, 1, -1)

	// Then composes slot by slot.
	c := a.Then(b)
	for _, x := range []float64{-3, 0, 0.25, 7} {
		for _, i := range []uint32{0, 1, 2, 4, 70000} {
			sa, oa := a.Lookup(i)
			sb, ob := b.Lookup(i)
			sc, oc := c.Lookup(i)
			if want, got := sb*(sa*x+oa)+ob, sc*x+oc; math.Abs(want-got) > 1e-12 {
				t.Errorf("slot %d x %g: composed gives %g, want %g", i, x, got, want)
			}
		}
	}
	if fmt.Sprint(c.Densified()) != "[4]" { // 4: 2(x/2−1)+3 = x+1; 70000: (3x+1)−1 = 3x
		t.Errorf("densified %v", c.Densified())
	}
	if fmt.Sprint(a.Densified()) != "[4 70000]" {
		t.Errorf("densified %v", a.Densified())
	}

	// Encoding round-trips.
	data, err := c.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	d, err := DecodeAffine(data)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(d) != fmt.Sprint(c) {
		t.Errorf("decoded %v, want %v", d, c)
	}
	if _, err := DecodeAffine(flip(data, len(data)-1)); !errors.Is(err, ErrCorrupt) {
		t.Errorf("damaged parameters: %v", err)
	}
	bad := &Affine{Features: []uint32{3, 2}, Scale: []float64{1, 1}, Offset: []float64{0, 0}}
	if _, err := bad.MarshalBinary(); err == nil {
		t.Error("unsorted slots encoded")
	}

	// Transformer applies it, densifying slots 4 and 70000.
	tr := NewTransformer(a)
	var out dataset.Row
	for _, c := range []struct {
		idx  []uint32
		val  []float32
		want string
	}{
		{[]uint32{1, 2}, []float32{3, 5}, "[1 2 4 70000] [6 5 -1 1]"},
		{[]uint32{4, 9}, nil, "[4 9 70000] [-0.5 1 1]"},
		{nil, nil, "[4 70000] [-1 1]"},
		{[]uint32{70000, 80000}, []float32{2, 2}, "[4 70000 80000] [-1 7 2]"},
	} {
		if err := tr.Transform(&out, 1, c.idx, c.val); err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprint(out.Indices, out.Values); got != c.want {
			t.Errorf("transform %v %v = %s, want %s", c.idx, c.val, got, c.want)
		}
	}
	huge := &Affine{}
	huge.Add(0, 1e38, 0)
	if err := NewTransformer(huge).Transform(&out, 0, []uint32{0}, []float32{1e10}); err == nil {
		t.Error("a value scaled out of float32 range was accepted")
	}
}

func FuzzDecodeAffine(f *testing.F) {
	a := &Affine{}
	a.Add(3, 2, -1)
	a.Add(1<<20, 0.5, 0)
	b, _ := a.MarshalBinary()
	f.Add(b)
	f.Add(b[:codecHeader])
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := DecodeAffine(data)
		if err != nil {
			return
		}
		if _, err := a.MarshalBinary(); err != nil {
			t.Fatalf("decoded parameters do not encode: %v", err)
		}
		NewTransformer(a)
	})
}

// failingStore fails every Put after the first ok ones.
type failingStore struct {
	blob.Store
	ok   int32
	puts atomic.Int32
}

func (f *failingStore) Put(ctx context.Context, key string, r io.Reader) error {
	if f.puts.Add(1) > f.ok {
		return errors.New("disk full")
	}
	return f.Store.Put(ctx, key, r)
}

func rowsFor(n int) []dataset.Row {
	rows := make([]dataset.Row, n)
	for i := range rows {
		rows[i] = dataset.Row{Label: float32(i % 2), Indices: []uint32{uint32(i % 7), 10 + uint32(i%300)}, Values: []float32{float32(i), 1}}
	}
	return rows
}

func TestBuilderAndPieces(t *testing.T) {
	ctx := context.Background()
	st := newStore(t)
	rows := rowsFor(5000)

	// Two tasks' pieces, one with small partitions (a long list, offloaded).
	var pieces []*Piece
	for k, part := range [][]dataset.Row{rows[:1000], rows[1000:]} {
		prefix := fmt.Sprintf("tasks/%d/", k)
		b := NewBuilder(ctx, st, prefix, []int{4096, 200}[k])
		for i := range part {
			if err := b.Add(&part[i]); err != nil {
				t.Fatal(err)
			}
		}
		p, err := b.Close()
		if err != nil {
			t.Fatal(err)
		}
		b.Abort() // after Close: a no-op
		if err := p.Save(ctx, st, prefix); err != nil {
			t.Fatal(err)
		}
		if k == 1 && (p.PartitionsKey == "" || p.Partitions != nil) {
			t.Errorf("a list of many partitions should be offloaded: key %q, %d inline", p.PartitionsKey, len(p.Partitions))
		}
		// The result travels as JSON: drop what it does not carry.
		p.Stats = nil
		pieces = append(pieces, p)
	}
	for _, p := range pieces {
		if err := p.Load(ctx, st); err != nil {
			t.Fatal(err)
		}
	}
	m := &Manifest{Dataset: Train, Stage: "load.x", StageKey: "k1", Store: st.URI("")}
	stats, err := Assemble(m, pieces)
	if err != nil {
		t.Fatal(err)
	}
	if m.Rows != 5000 || m.Positives != 2500 || m.Negatives != 2500 || m.NNZ != 10000 || m.Features != 310 {
		t.Errorf("assembled %d rows %d+/%d- %d nnz %d features", m.Rows, m.Positives, m.Negatives, m.NNZ, m.Features)
	}
	if err := m.PutStats(ctx, st, Key("k1", "train.stats"), stats); err != nil {
		t.Fatal(err)
	}
	uri, err := Write(ctx, st, Key("k1", "train.json"), m)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Open(ctx, st, uri)
	if err != nil {
		t.Fatal(err)
	}
	if got.Digest != m.Digest || len(got.Partitions) != len(m.Partitions) {
		t.Errorf("read back %+v", got)
	}
	// The partitions hold the rows in order, with the recorded checksums.
	n := 0
	for _, pe := range got.Partitions {
		data, err := getObject(ctx, st, pe.Key)
		if err != nil {
			t.Fatal(err)
		}
		p, err := partition.Decode(data)
		if err != nil {
			t.Fatal(err)
		}
		if crc := uint32(data[12]) | uint32(data[13])<<8 | uint32(data[14])<<16 | uint32(data[15])<<24; crc != pe.CRC32C || p.Rows() != pe.Rows {
			t.Fatalf("partition %s: crc %08x rows %d, manifest %+v", pe.Key, crc, p.Rows(), pe)
		}
		for i := 0; i < p.Rows(); i++ {
			_, idx, val := p.Row(i)
			if idx[0] != rows[n].Indices[0] || val[0] != rows[n].Values[0] {
				t.Fatalf("row %d: %v %v, want %+v", n, idx, val, rows[n])
			}
			n++
		}
	}
	s, err := got.ReadStats(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	if f := s.Feature(10); f.Count != 17 || f.Sum != 17 {
		t.Errorf("slot 10: %+v", f)
	}

	// Damage is detected: the statistics, the manifest's figures.
	if err := st.Put(ctx, got.Stats, bytes.NewReader([]byte("STRS junk"))); err != nil {
		t.Fatal(err)
	}
	if _, err := got.ReadStats(ctx, st); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), st.URI(got.Stats)) {
		t.Errorf("damaged statistics: %v", err)
	}
	tampered := *got
	tampered.Rows++
	tampered.Negatives++
	tampered.Partitions = append([]Partition(nil), got.Partitions...)
	tampered.Partitions[0].Rows++
	if err := tampered.Check(); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "digest") {
		t.Errorf("tampered manifest: %v", err)
	}
	if _, err := Open(ctx, st, "s3://elsewhere/stages/k1/train.json"); err == nil || !strings.Contains(err.Error(), "not in this run's blob store") {
		t.Errorf("foreign URI: %v", err)
	}
}

func TestBuilderPutFailure(t *testing.T) {
	ctx := context.Background()
	st := &failingStore{Store: newStore(t), ok: 1}
	b := NewBuilder(ctx, st, "x/", 4096)
	defer b.Abort()
	rows := rowsFor(3000)
	var err error
	for i := range rows {
		if err = b.Add(&rows[i]); err != nil {
			break // a later Add reports the failed write
		}
	}
	if err == nil {
		_, err = b.Close()
	}
	if err == nil || !strings.Contains(err.Error(), "disk full") || !strings.Contains(err.Error(), "x/part-0000") {
		t.Errorf("error %v; want the failed partition named", err)
	}
}

func TestEmptyDataset(t *testing.T) {
	ctx := context.Background()
	st := newStore(t)
	m := &Manifest{Dataset: Test, Features: 10}
	if _, err := Assemble(m, nil); err != nil {
		t.Fatal(err)
	}
	uri, err := Write(ctx, st, Key("k", "test.json"), m)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Open(ctx, st, uri)
	if err != nil {
		t.Fatal(err)
	}
	s, err := got.ReadStats(ctx, st)
	if err != nil || got.Rows != 0 || got.Partitions == nil || s.Len() != 0 {
		t.Errorf("empty dataset: %+v, stats %v (err %v)", got, s, err)
	}
	if p, err := got.ReadParams(ctx, st); p != nil || err != nil {
		t.Errorf("params of an unnormalized dataset: %v %v", p, err)
	}
}
