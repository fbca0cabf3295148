package load_test

import (
	"fmt"
	"testing"

	"github.com/stratus-ml/stratus/dataset"
	"github.com/stratus-ml/stratus/dataset/manifest"
	"github.com/stratus-ml/stratus/executor/runtime/runtimetest"
)

// TestLoadLIBSVMHashBits loads a9a with hash_bits = 6: every row is the
// file's row with its indices hashed (checked against the parser), the
// feature space is 2^6, and the manifest names the hash so predict hashes
// the same way, as index_hash_bits: the slots hold values, which normalize
// scales (hash_bits would mark them as hashed category counts).
func TestLoadLIBSVMHashBits(t *testing.T) {
	path := testdata(t, "a9a")
	h := runtimetest.New(t, fmt.Sprintf(`
load "hashed" {
  source    = %q
  hash_bits = 6
  tasks     = 3
}
load "plain" {
  source = %q
}
normalize "hashed" {
  input  = load.hashed
  method = "standard"
}
`, path, path))
	h.MustApply()
	m := h.Dataset(h.Output("load.hashed").GetAttr("train"))
	plain := h.Dataset(h.Output("load.plain").GetAttr("train"))
	if m.Features != 64 || m.Format.IndexHashBits != 6 || m.Format.HashBits != 0 || m.Format.Hash != manifest.IndexHashName || m.Rows != plain.Rows {
		t.Fatalf("features %d, format %+v, rows %d", m.Features, m.Format, m.Rows)
	}
	hashed, rows := h.Rows(m), h.Rows(plain)
	var collided int
	for n, r := range rows {
		want := map[uint32]float32{}
		for k, i := range r.Indices {
			want[uint32(dataset.Fmix64((uint64(i)+1)^dataset.LIBSVMHashKey)&63)] += r.Values[k]
		}
		got := hashed[n]
		if len(got.Indices) != len(want) || got.Label != r.Label {
			t.Fatalf("row %d: %v, want %v", n, got.Indices, want)
		}
		for k, i := range got.Indices {
			if got.Values[k] != want[i] {
				t.Fatalf("row %d: slot %d = %v, want %v", n, i, got.Values[k], want[i])
			}
		}
		if len(want) < len(r.Indices) {
			collided++
		}
	}
	if collided == 0 {
		t.Error("64 slots for 123 features and no row with a collision: the hash is not applied")
	}
	runtimetest.CompareStats(t, "hashed", h.Stats(m), hashed)

	// The hashed slots hold values: standard scaling moves them.
	norm := h.Rows(h.Dataset(h.Output("normalize.hashed").GetAttr("train")))
	moved := 0
	for n, r := range norm {
		for k := range r.Values {
			if k < len(hashed[n].Values) && r.Values[k] != hashed[n].Values[k] {
				moved++
			}
		}
	}
	if moved == 0 {
		t.Error("normalize left every hashed slot unchanged: it took them for hashed categories")
	}
}
