package train

import (
	"math"
	"slices"

	"github.com/stratus-ml/stratus/dataset"
	"github.com/stratus-ml/stratus/dataset/partition"
)

// Matrix factorization (model = "matrix_factorization"), collaborative
// filtering as Cirrus trained it: on a ratings dataset (load format =
// "ratings", where user u is slot 2u and item i slot 2i+1), the prediction
// for user u and item i is
//
//	r̂(u, i) = μ + b_u + b_i + ⟨p_u, q_i⟩
//
// with μ the training set's mean rating, biases b and rank-k factors p, q.
// The objective is the sum over training ratings of
//
//	½(r̂ − r)² + ½λ(b_u² + ‖p_u‖² + b_i² + ‖q_i‖²)
//
// — each rating regularises the parameters it touches, so a user with many
// ratings is regularised in proportion (the weighted-λ regularisation of
// ALS-WR, Zhou et al. 2008, which the tests' ALS reference minimises too).
//
// The model in psstore has (k+1) coordinates per slot: slot s holds its bias
// at s·(k+1) and its factor at s·(k+1)+1 … s·(k+1)+k; it is initialised
// N(0, 0.1²) (psstore's "normal" init, keyed on the seed). Two solvers
// train it (chooseMFSolver): alternating least squares (mf_als.go) and
// asynchronous SGD, as follows. Workers run
// asynchronous minibatch SGD over their share of the ratings: pull the
// minibatch's slots, push the sum of the per-rating gradients, which the
// shards apply with the optimizer (per-coordinate adagrad by default, so a
// user with many ratings takes smaller steps). An evaluator measures RMSE on
// the held-out set; training stops on its convergence like the other models.
//
// A user or item the training set never rated is unknown: its bias and
// factor are 0 in the exported model, so its prediction is μ plus the bias
// of the side that is known (μ alone when neither is).

// Defaults of matrix factorization.
const (
	DefaultRank = 10
	DefaultMFL2 = 0.05
	// DefaultMFLearningRate is adagrad's step. On generated rank-10 ratings
	// (6,000 users × 4,000 items, 1M ratings, `make bench-mf`), five epochs
	// reach a test RMSE of 0.586 at 0.05, 0.546 at 0.2 and 0.551 at 0.5; plain
	// SGD at 0.01 and 0.03 reaches 0.597 and 0.602.
	DefaultMFLearningRate = 0.2
	mfInitStddev          = 0.1
)

// mfMinibatch is the default minibatch of matrix factorization: twice the
// users and items, within [1000, 50000] ratings, so that a minibatch touches
// most of them about twice and a worker pulls and pushes a few coordinates
// per rating rather than 2(k+1). On generated rank-10 ratings (6,000 users ×
// 4,000 items, 1M ratings, `make bench-mf`, defaults otherwise) minibatches
// of 1,000, 5,000, 20,000 and 50,000 ratings reached test RMSEs of 0.5485,
// 0.5454, 0.5382 and 0.5381 at 215k, 315k, 498k and 647k ratings/s.
func mfMinibatch(users, items int64) int {
	return int(min(max(2*(users+items), 1000), 50000))
}

// mfKey is the psstore coordinate of slot s's j-th parameter (0: the bias).
func mfKey(s uint32, j, rank int) uint64 { return uint64(s)*uint64(rank+1) + uint64(j) }

// mfSlots are the user and item slots of each row of a batch of ratings.
func mfSlots(b *partition.Batch, r int) (u, i uint32, ok bool) {
	base := b.Offsets[0]
	lo, hi := b.Offsets[r]-base, b.Offsets[r+1]-base
	return dataset.RatingPair(b.Indices[lo:hi])
}

// mfPredict is μ + b_u + b_i + ⟨p_u, q_i⟩ for parameter blocks pu and qi
// (bias first, then the factor).
func mfPredict(mean float64, pu, qi []float32) float64 {
	z := mean + float64(pu[0]) + float64(qi[0])
	for k := 1; k < len(pu); k++ {
		z += float64(pu[k]) * float64(qi[k])
	}
	return z
}

// mfGrad adds the gradient of one rating's term of the objective, with
// respect to the blocks pu and qi, to gu and gq, and returns the term.
func mfGrad(mean, l2 float64, r float32, pu, qi, gu, gq []float32) float64 {
	pred := mfPredict(mean, pu, qi)
	e := pred - float64(r)
	reg := 0.0
	gu[0] += float32(e + l2*float64(pu[0]))
	gq[0] += float32(e + l2*float64(qi[0]))
	reg += float64(pu[0])*float64(pu[0]) + float64(qi[0])*float64(qi[0])
	for k := 1; k < len(pu); k++ {
		p, q := float64(pu[k]), float64(qi[k])
		gu[k] += float32(e*q + l2*p)
		gq[k] += float32(e*p + l2*q)
		reg += p*p + q*q
	}
	return 0.5*e*e + 0.5*l2*reg
}

// mfBatch is a worker's scratch for one minibatch: the distinct coordinates
// the minibatch touches, their pulled values and their summed gradients.
type mfBatch struct {
	rank int
	// stamp[s] is the build that last saw slot s, and pos[s] its block's
	// index in that build (slot-indexed arrays, not maps: a minibatch of
	// MF's default size touches most slots).
	stamp []uint32
	pos   []int32
	gen   uint32
	slots []uint32
	keys  []uint64
	w, g  []float32
	// users and items are each row's blocks (−1: not a rating pair).
	users, items []int
}

func newMFBatch(rank int) *mfBatch { return &mfBatch{rank: rank} }

// see marks slot s seen in this build, growing the slot arrays to hold it.
func (m *mfBatch) see(s uint32) {
	if int(s) >= len(m.stamp) {
		n := max(int(s)+1, 2*len(m.stamp), 1024)
		m.stamp = append(m.stamp, make([]uint32, n-len(m.stamp))...)
		m.pos = append(m.pos, make([]int32, n-len(m.pos))...)
	}
	if m.stamp[s] != m.gen {
		m.stamp[s] = m.gen
		m.slots = append(m.slots, s)
	}
}

// build collects the distinct slots of b and their keys, in increasing
// order (psstore sorts a request's keys: sorted ones cost it least).
func (m *mfBatch) build(b *partition.Batch) {
	m.gen++
	if m.gen == 0 { // wrapped: forget every stamp
		clear(m.stamp)
		m.gen = 1
	}
	m.slots, m.keys, m.users, m.items = m.slots[:0], m.keys[:0], m.users[:0], m.items[:0]
	for r := 0; r < b.Len(); r++ {
		u, i, ok := mfSlots(b, r)
		if !ok {
			m.users, m.items = append(m.users, -1), append(m.items, -1)
			continue
		}
		m.see(u)
		m.see(i)
		m.users, m.items = append(m.users, int(u)), append(m.items, int(i))
	}
	if 16*len(m.slots) >= len(m.stamp) {
		// Most slots: their order by a scan of the stamps, cheaper than a sort.
		m.slots = m.slots[:0]
		for s, st := range m.stamp {
			if st == m.gen {
				m.slots = append(m.slots, uint32(s))
			}
		}
	} else {
		slices.Sort(m.slots)
	}
	for k, s := range m.slots {
		m.pos[s] = int32(k)
		for j := 0; j <= m.rank; j++ {
			m.keys = append(m.keys, mfKey(s, j, m.rank))
		}
	}
	for r, u := range m.users {
		if u >= 0 {
			m.users[r], m.items[r] = int(m.pos[u]), int(m.pos[m.items[r]])
		}
	}
	n := len(m.keys)
	if cap(m.w) < n {
		m.w, m.g = make([]float32, n), make([]float32, n)
	}
	m.w, m.g = m.w[:n], m.g[:n]
}

// gradient fills m.g with the minibatch's summed gradient at the pulled m.w
// and returns the mean objective term per rating.
func (m *mfBatch) gradient(b *partition.Batch, mean, l2 float64) float64 {
	clear(m.g)
	k := m.rank + 1
	var loss float64
	n := 0
	for r := 0; r < b.Len(); r++ {
		u, i := m.users[r], m.items[r]
		if u < 0 {
			continue
		}
		loss += mfGrad(mean, l2, b.Labels[r], m.w[u*k:(u+1)*k], m.w[i*k:(i+1)*k], m.g[u*k:(u+1)*k], m.g[i*k:(i+1)*k])
		n++
	}
	if n == 0 {
		return 0
	}
	return loss / float64(n)
}

// RatingMetrics are a matrix factorization's figures on a ratings set.
type RatingMetrics struct {
	RMSE float64 `json:"rmse"`
	MAE  float64 `json:"mae"`
	Rows int     `json:"rows"`
}

// ratingErrors accumulates RMSE and MAE.
type ratingErrors struct {
	sq, abs float64
	n       int
}

func (e *ratingErrors) add(pred float64, r float32) {
	d := pred - float64(r)
	e.sq += d * d
	e.abs += math.Abs(d)
	e.n++
}

func (e *ratingErrors) metrics() RatingMetrics {
	if e.n == 0 {
		return RatingMetrics{} // no ratings: Rows 0 says so
	}
	return RatingMetrics{RMSE: math.Sqrt(e.sq / float64(e.n)), MAE: e.abs / float64(e.n), Rows: e.n}
}

// MFModel is what a matrix factorization's artifact records beside its
// weights (Artifact.MF): the weights are (Slots)·(Rank+1) float32s, slot s's
// bias then factor at s·(Rank+1); unknown slots are all zero.
type MFModel struct {
	Rank int     `json:"rank"`
	Mean float64 `json:"mean"`
	// Slots is the number of slots the weights cover; a slot at or past it
	// (a user or item id larger than any the data held) is unknown.
	Slots      int            `json:"slots"`
	Users      int64          `json:"users"`
	Items      int64          `json:"items"`
	Test       *RatingMetrics `json:"test,omitempty"`
	Validation *RatingMetrics `json:"validation,omitempty"`
}

// block returns slot s's parameters in w, or nil when s is unknown.
func (m *MFModel) block(w []float32, s uint32) []float32 {
	k := m.Rank + 1
	if int(s) >= m.Slots || (int(s)+1)*k > len(w) {
		return nil
	}
	return w[int(s)*k : (int(s)+1)*k]
}

// predict is the model's rating of the user and item slots (see the package
// notes on unknown users and items).
func (m *MFModel) predict(w []float32, u, i uint32) float64 {
	pu, qi := m.block(w, u), m.block(w, i)
	z := m.Mean
	switch {
	case pu != nil && qi != nil:
		return mfPredict(m.Mean, pu, qi)
	case pu != nil:
		z += float64(pu[0])
	case qi != nil:
		z += float64(qi[0])
	}
	return z
}
