package normalize

import (
	"math"
	"testing"

	"github.com/stratus-ml/stratus/dataset/manifest"
)

// TestHashedSlotsUnscaled: slots of the hashed space are categorical indicators and
// keep their 0/1 values; numeric slots below it are scaled.
func TestHashedSlotsUnscaled(t *testing.T) {
	s := manifest.NewStats()
	// Slot 0 numeric (values 2, 4, 0, 0); slot 20 a rare hashed value.
	s.AddRow([]uint32{0, 20}, []float32{2, 1})
	s.AddRow([]uint32{0}, []float32{4})
	s.AddRow(nil, nil)
	s.AddRow(nil, nil)
	criteo := manifest.Format{Name: "criteo", HashBits: 4, HashOffset: 13}
	for name, a := range map[string]*manifest.Affine{
		"standard": Standard(s, false, NumericSlots(criteo)),
		"min_max":  MinMax(s, 0, 1, NumericSlots(criteo)),
	} {
		if sc, off := a.Lookup(20); sc != 1 || off != 0 {
			t.Errorf("%s scaled hashed slot 20: ×%g %+g", name, sc, off)
		}
		if sc, _ := a.Lookup(0); sc == 1 {
			t.Errorf("%s left numeric slot 0 unscaled", name)
		}
	}
	// For LIBSVM every slot is numeric.
	a := Standard(s, false, NumericSlots(manifest.Format{Name: "libsvm"}))
	sd := math.Sqrt(0.25 * (1 - 0.25)) // slot 20: one 1 in four rows
	if sc, _ := a.Lookup(20); math.Abs(sc-1/sd) > 1e-9 {
		t.Errorf("libsvm slot 20 scale %g, want %g", sc, 1/sd)
	}
}
