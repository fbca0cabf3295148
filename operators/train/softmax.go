package train

import (
	"math"

	"github.com/stratus-ml/stratus/dataset/partition"
)

// softmax: multinomial logistic regression over K classes. The training set's
// distinct labels in increasing order are the classes 0..K−1 (labelFunc; so
// labels 0..K−1 keep their values and LIBSVM's 1..K become 0..K−1), recorded in
// the model artifact (Artifact.Classes) so that predict names them as the input
// did.
//
// The weights are K × (F+1) — F features and an intercept per class — laid out
// feature-major, as one psstore model of K·(F+1) coordinates: coordinate
// j·K + k is feature j's weight for class k, and j = F is the intercept. A worker
// pulls and pushes the K consecutive coordinates of each feature of its minibatch,
// so a row of n features costs K·(n+1) keys, and the shards split the model by
// feature as they split a binary one. The loss is the mean cross-entropy
// −log p_y with p = softmax(z), z_k = w_k·x + b_k (scikit-learn's
// LogisticRegression(multinomial)); l2 applies to the feature weights, not the
// intercepts.

// softmaxDim is the model size of K classes over features features.
func softmaxDim(features, classes int) uint64 { return uint64(features+1) * uint64(classes) }

// modelDim is the number of coordinates of a model: features + 1 (intercept last)
// for the scalar models, K·(features+1) for softmax.
func modelDim(model string, features int, classes []float64) uint64 {
	if model == "softmax" {
		return softmaxDim(features, len(classes))
	}
	return uint64(features) + 1
}

// regularized reports whether coordinate j of a model of dim coordinates is a
// feature weight (l2 applies) rather than an intercept.
func regularized(j, dim uint64, classes int) bool {
	if classes > 0 {
		return j < dim-uint64(classes)
	}
	return j < dim-1
}

// softmaxScores sets z[k] = w_k·x + b_k for the row of b at entries [lo, hi) with
// weights w (feature-major, K = len(z) classes, dim = len(w)), indices folded into
// the F = dim/K − 1 features as the scalar models fold them.
func softmaxScores(b *partition.Batch, lo, hi uint32, w []float64, z []float64) {
	k := len(z)
	d := uint32(len(w) / k) // F+1
	copy(z, w[int(d-1)*k:])
	for e := lo; e < hi; e++ {
		f := fold(b.Indices[e], d)
		v := 1.0
		if b.Values != nil {
			v = float64(b.Values[e])
		}
		row := w[int(f)*k : int(f+1)*k]
		for c := range z {
			z[c] += row[c] * v
		}
	}
}

// softmaxProbs turns scores into probabilities in place and returns the log of
// the normaliser, so that −log p_y = logZ − z_y (computed before the change).
func softmaxProbs(z []float64) (logZ float64) {
	m := math.Inf(-1)
	for _, x := range z {
		m = math.Max(m, x)
	}
	var s float64
	for i, x := range z {
		z[i] = math.Exp(x - m)
		s += z[i]
	}
	for i := range z {
		z[i] /= s
	}
	return m + math.Log(s)
}

// softmaxLoss is −log p_y from scores z (which it turns into probabilities);
// a label that is not a class (y < 0) costs +Inf.
func softmaxLoss(z []float64, y int) float64 {
	if y < 0 || y >= len(z) {
		return math.Inf(1)
	}
	zy := z[y]
	return softmaxProbs(z) - zy
}

// softmaxLossGrad adds to g the gradient of the summed cross-entropy of s at w
// (feature-major, classes classes) and returns that sum and the rows.
func softmaxLossGrad(s *evalSet, w, g []float64, classes int) (float64, int) {
	d := uint32(len(w) / classes)
	z := make([]float64, classes)
	var loss float64
	rows := 0
	for _, b := range s.parts {
		base := b.Offsets[0]
		for r := 0; r < b.Len(); r++ {
			lo, hi := b.Offsets[r]-base, b.Offsets[r+1]-base
			softmaxScores(&b, lo, hi, w, z)
			y := int(b.Labels[r])
			loss += softmaxLoss(z, y)
			if y >= 0 && y < classes {
				z[y]-- // p − onehot(y)
			}
			ib := g[int(d-1)*classes:]
			for c, x := range z {
				ib[c] += x
			}
			for e := lo; e < hi; e++ {
				f := fold(b.Indices[e], d)
				v := 1.0
				if b.Values != nil {
					v = float64(b.Values[e])
				}
				gr := g[int(f)*classes : int(f+1)*classes]
				for c, x := range z {
					gr[c] += x * v
				}
			}
		}
		rows += b.Len()
	}
	return loss, rows
}

// softmaxLossSum is the summed cross-entropy of s at w, its rows and how many the
// model classifies correctly (the most probable class).
func softmaxLossSum(s *evalSet, w []float64, classes int) (loss float64, rows, correct int) {
	z := make([]float64, classes)
	for _, b := range s.parts {
		base := b.Offsets[0]
		for r := 0; r < b.Len(); r++ {
			lo, hi := b.Offsets[r]-base, b.Offsets[r+1]-base
			softmaxScores(&b, lo, hi, w, z)
			if argmax(z) == int(b.Labels[r]) {
				correct++
			}
			loss += softmaxLoss(z, int(b.Labels[r]))
		}
		rows += b.Len()
	}
	return loss, rows, correct
}

func argmax(z []float64) int {
	best := 0
	for i, x := range z {
		if x > z[best] {
			best = i
		}
	}
	return best
}

// evaluateSoftmax scores s with weights w (feature-major, classes classes): the
// mean cross-entropy (clipped as evaluate clips: −log max(p_y, 1e-15)), the
// accuracy of the most probable class and each class's accuracy.
func (s *evalSet) evaluateSoftmax(w []float32, classes int) Metrics {
	m := nanMetrics()
	m.Rows = len(s.ys)
	w64 := make([]float64, len(w))
	for i, x := range w {
		w64[i] = float64(x)
	}
	z := make([]float64, classes)
	hits, count := make([]int, classes), make([]int, classes)
	var loss float64
	correct := 0
	for _, b := range s.parts {
		base := b.Offsets[0]
		for r := 0; r < b.Len(); r++ {
			lo, hi := b.Offsets[r]-base, b.Offsets[r+1]-base
			softmaxScores(&b, lo, hi, w64, z)
			softmaxProbs(z)
			y := int(b.Labels[r])
			if y < 0 || y >= classes {
				loss += -math.Log(clip)
				continue
			}
			loss -= math.Log(math.Max(z[y], clip))
			count[y]++
			if argmax(z) == y {
				correct++
				hits[y]++
			}
		}
	}
	if m.Rows == 0 {
		return m
	}
	m.Logloss = loss / float64(m.Rows)
	m.Accuracy = float64(correct) / float64(m.Rows)
	m.PerClass = make([]float64, classes)
	for c := range m.PerClass {
		m.PerClass[c] = math.NaN()
		if count[c] > 0 {
			m.PerClass[c] = float64(hits[c]) / float64(count[c])
		}
	}
	return m
}

// softmaxBatch is a worker's minibatch of a softmax model: the distinct features
// of the batch (minibatch, over the F+1 features) expanded to their K coordinates
// each.
type softmaxBatch struct {
	mb      *minibatch
	classes int
	keys    []uint64
	w, g    []float32
	z       []float64
}

func newSoftmaxBatch(dim uint64, classes int) *softmaxBatch {
	return &softmaxBatch{mb: newMinibatch(dim / uint64(classes)), classes: classes, z: make([]float64, classes)}
}

// build prepares the keys of b: for each distinct feature j (the intercept
// first), the coordinates j·K … j·K+K−1.
func (s *softmaxBatch) build(b partition.Batch) {
	s.mb.build(b)
	k := uint64(s.classes)
	s.keys = s.keys[:0]
	for _, f := range s.mb.keys {
		for c := range k {
			s.keys = append(s.keys, f*k+c)
		}
	}
	if cap(s.w) < len(s.keys) {
		s.w = make([]float32, len(s.keys), 2*len(s.keys))
		s.g = make([]float32, len(s.keys), 2*len(s.keys))
	}
	s.w, s.g = s.w[:len(s.keys)], s.g[:len(s.keys)]
}

// gradient computes into s.g the gradient of the mean cross-entropy of b at the
// pulled weights s.w and returns that mean loss.
func (s *softmaxBatch) gradient(b partition.Batch) float64 {
	for i := range s.g {
		s.g[i] = 0
	}
	n := b.Len()
	if n == 0 {
		return 0
	}
	k := s.classes
	inv := 1 / float64(n)
	z := s.z
	slot := s.mb.slot
	var loss float64
	base := b.Offsets[0]
	for r := 0; r < n; r++ {
		lo, hi := b.Offsets[r]-base, b.Offsets[r+1]-base
		for c := range z {
			z[c] = float64(s.w[c]) // the intercepts: slot 0
		}
		for e := lo; e < hi; e++ {
			v := 1.0
			if b.Values != nil {
				v = float64(b.Values[e])
			}
			ws := s.w[int(slot[e])*k : int(slot[e]+1)*k]
			for c := range z {
				z[c] += float64(ws[c]) * v
			}
		}
		y := int(b.Labels[r])
		loss += softmaxLoss(z, y)
		if y >= 0 && y < k {
			z[y]--
		}
		for c := range z {
			s.g[c] += float32(z[c] * inv)
		}
		for e := lo; e < hi; e++ {
			v := inv
			if b.Values != nil {
				v *= float64(b.Values[e])
			}
			gs := s.g[int(slot[e])*k : int(slot[e]+1)*k]
			for c := range z {
				gs[c] += float32(z[c] * v)
			}
		}
	}
	return loss * inv
}
