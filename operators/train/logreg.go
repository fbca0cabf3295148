package train

import (
	"math"

	"github.com/stratus-ml/stratus/dataset/partition"
)

// denseLimit is the largest model for which a minibatch's key positions are kept in a
// dense array (4 bytes per feature); larger models use a map.
const denseLimit = 1 << 24

// minibatch gathers the distinct features of a batch — the keys a worker pulls from
// and pushes to the parameter server — and, for every entry of the batch, the slot of
// its feature among them. The intercept is the last feature of the model (index
// dim-1) and is always the first key.
type minibatch struct {
	dim       uint64
	keys      []uint64 // distinct features; keys[0] is the intercept
	slot      []int32  // per batch entry: index into keys
	dense     []int32  // feature → slot+1, 0 when absent (dim ≤ denseLimit)
	sparse    map[uint32]int32
	w, g      []float32 // pulled weights and the gradient, aligned with keys
	batchRows int
}

func newMinibatch(dim uint64) *minibatch {
	m := &minibatch{dim: dim}
	if dim <= denseLimit {
		m.dense = make([]int32, dim)
	} else {
		m.sparse = map[uint32]int32{}
	}
	return m
}

// intercept is the model index of the bias term.
func (m *minibatch) intercept() uint64 { return m.dim - 1 }

// build prepares the keys and slots of b. Features at or beyond the model's
// intercept index are folded onto it modulo dim-1 (a model sized for fewer features
// than the data holds, as with hashing, stays usable).
func (m *minibatch) build(b partition.Batch) {
	m.keys = append(m.keys[:0], m.intercept())
	m.slot = m.slot[:0]
	m.batchRows = b.Len()
	limit := uint32(min(m.dim-1, math.MaxUint32))
	for _, f := range b.Indices {
		if f >= limit {
			f %= limit
		}
		var s int32
		if m.dense != nil {
			s = m.dense[f] - 1
			if s < 0 {
				s = int32(len(m.keys))
				m.dense[f] = s + 1
				m.keys = append(m.keys, uint64(f))
			}
		} else {
			var ok bool
			if s, ok = m.sparse[f]; !ok {
				s = int32(len(m.keys))
				m.sparse[f] = s
				m.keys = append(m.keys, uint64(f))
			}
		}
		m.slot = append(m.slot, s)
	}
	// Reset the lookup for the next batch, touching only what this one set.
	for _, k := range m.keys[1:] {
		if m.dense != nil {
			m.dense[k] = 0
		} else {
			delete(m.sparse, uint32(k))
		}
	}
	if cap(m.w) < len(m.keys) {
		m.w = make([]float32, len(m.keys), 2*len(m.keys))
		m.g = make([]float32, len(m.keys), 2*len(m.keys))
	}
	m.w, m.g = m.w[:len(m.keys)], m.g[:len(m.keys)]
}

// gradient computes into m.g the gradient of the mean logistic loss of b at the
// weights m.w (aligned with m.keys), and returns that mean loss. Labels are 0 or 1.
// L2 regularisation is applied by the parameter server, not here.
func (m *minibatch) gradient(b partition.Batch) float64 { return m.gradientOf(b, nil) }

// gradientOf is gradient for the loss fn (nil: the logistic loss, inlined).
func (m *minibatch) gradientOf(b partition.Batch, fn lossFunc) float64 {
	for i := range m.g {
		m.g[i] = 0
	}
	n := b.Len()
	if n == 0 {
		return 0
	}
	inv := 1 / float64(n)
	var loss float64
	base := b.Offsets[0]
	bias := float64(m.w[0])
	for r := 0; r < n; r++ {
		lo, hi := b.Offsets[r]-base, b.Offsets[r+1]-base
		z := bias
		if b.Values == nil {
			for e := lo; e < hi; e++ {
				z += float64(m.w[m.slot[e]])
			}
		} else {
			for e := lo; e < hi; e++ {
				z += float64(m.w[m.slot[e]]) * float64(b.Values[e])
			}
		}
		y := float64(b.Labels[r])
		var d float64
		if fn == nil {
			l, dz := logisticLossFunc(z, y)
			loss += l
			d = dz * inv
		} else {
			l, dz := fn(z, y)
			loss += l
			d = dz * inv
		}
		m.g[0] += float32(d)
		if b.Values == nil {
			for e := lo; e < hi; e++ {
				m.g[m.slot[e]] += float32(d)
			}
		} else {
			for e := lo; e < hi; e++ {
				m.g[m.slot[e]] += float32(d * float64(b.Values[e]))
			}
		}
	}
	return loss * inv
}

// sigmoid is 1/(1+e^-z), computed without overflow.
func sigmoid(z float64) float64 {
	if z >= 0 {
		return 1 / (1 + math.Exp(-z))
	}
	e := math.Exp(z)
	return e / (1 + e)
}

// logisticSigmoid is logistic(z, y) and sigmoid(z) from one exponential — the
// pair every gradient step needs (bit for bit the same as the two calls).
func logisticSigmoid(z, y float64) (loss, p float64) {
	e := math.Exp(-math.Abs(z))
	if z > 0 {
		loss = z + math.Log1p(e)
	} else {
		loss = math.Log1p(e)
	}
	if z >= 0 {
		p = 1 / (1 + e)
	} else {
		p = e / (1 + e)
	}
	return loss - y*z, p
}

// logistic is the log loss of margin z for label y ∈ {0, 1}: log(1+e^z) − y·z,
// computed stably for large |z|.
func logistic(z, y float64) float64 {
	var sp float64 // softplus(z) = log(1+e^z)
	if z > 0 {
		sp = z + math.Log1p(math.Exp(-z))
	} else {
		sp = math.Log1p(math.Exp(z))
	}
	return sp - y*z
}
