package train

import (
	"math/rand/v2"

	"github.com/stratus-ml/stratus/dataset/prefetch"
)

// PartRef is one partition of a dataset.
type PartRef struct {
	Key  string `json:"key"`
	Rows int    `json:"rows"`
}

// makeUnits cuts partitions into units of work. With fewer partitions than twice the
// workers (small data such as a9a), partitions are split into row ranges so every
// worker gets a share and the per-epoch shuffle has something to shuffle; otherwise a
// unit is a whole partition (one GET each).
func makeUnits(parts []PartRef, workers, minibatch int) []prefetch.Unit {
	chunks := 1
	if len(parts) > 0 && len(parts) < 2*workers {
		chunks = (2*workers*4 + len(parts) - 1) / len(parts)
	}
	var us []prefetch.Unit
	for _, p := range parts {
		if p.Rows == 0 {
			continue
		}
		n := min(chunks, max(1, p.Rows/max(minibatch, 1)))
		for c := 0; c < n; c++ {
			lo, hi := p.Rows*c/n, p.Rows*(c+1)/n
			if c == n-1 {
				hi = -1
			}
			us = append(us, prefetch.Unit{Key: p.Key, Lo: lo, Hi: hi})
		}
	}
	return us
}

// deal returns worker w's units for an epoch: a shuffle of all units seeded by (seed,
// epoch), dealt round-robin. Every worker computes its own share; together they
// cover every unit exactly once per epoch.
func deal(units []prefetch.Unit, seed int64, epoch, w, workers int) []prefetch.Unit {
	perm := rand.New(rand.NewPCG(uint64(seed), uint64(epoch)+0x9e3779b97f4a7c15)).Perm(len(units))
	var mine []prefetch.Unit
	for i := w; i < len(perm); i += workers {
		mine = append(mine, units[perm[i]])
	}
	return mine
}
