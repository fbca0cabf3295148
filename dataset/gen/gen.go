// Package gen generates Criteo-like click data with a known logistic ground
// truth, for benchmarks and scale tests.
//
// Each row has 13 integer columns (heavy-tailed counts; the second may be
// -1 or -2, as in Criteo) and 26 categorical columns whose values are drawn
// from Zipf distributions over per-column vocabularies (3 to 1,000,000
// values) and written as 8 hex digits. Fields are missing with per-column
// probabilities. The label is drawn from
//
//	P(click) = sigmoid(b + Σ_j u_j·log1p(max(x_j, 0)) + Σ_c w[slot(c, v_c)])
//
// where slot is the hashing trick of dataset.Criteo with the same hash_bits,
// w is a fixed pseudo-random weight per slot (so colliding values share it,
// and two columns in one slot count twice, exactly as the parsed features
// do), u_j a fixed weight per integer column, and b an intercept calibrated
// so that about 25% of rows are clicks. A logistic regression (with an
// intercept) on the features dataset.Criteo{Log1p: true} parses — or on the
// LIBSVM output, which holds exactly those features — can therefore reach
// the Bayes logloss, which Generate reports.
//
// Output is deterministic for a seed and independent of the number of
// workers: rows are generated in chunks with per-chunk random streams and
// written in order.
package gen

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"runtime"
	"strconv"

	"golang.org/x/sync/errgroup"

	"github.com/stratus-ml/stratus/dataset"
)

// Formats Generate writes.
const (
	FormatCriteo = "criteo"
	FormatLIBSVM = "libsvm"
)

// Config configures Generate.
type Config struct {
	Rows int64
	// Seed draws the rows. Files made with different seeds and the same ModelSeed
	// share a ground truth, so one can be the test set of another.
	Seed uint64
	// ModelSeed draws the ground truth (the weight of every value); 0 means 1.
	ModelSeed uint64
	Format    string // FormatCriteo (default) or FormatLIBSVM
	HashBits  int    // default dataset.DefaultHashBits
	// ChunkRows is the number of rows per independently seeded chunk
	// (default 8192). It is part of the output's identity: changing it
	// changes the data.
	ChunkRows int
	// Workers generating chunks in parallel; default GOMAXPROCS. It does
	// not change the output.
	Workers int
}

// Stats describe the generated data.
type Stats struct {
	Rows      int64
	Positives int64
	Bytes     int64
	NNZ       int64 // stored entries as dataset.Criteo{Log1p: true} parses them
	// BayesLogloss is the expected logloss of the true model on the
	// generated rows: the mean over rows of the entropy of P(click | row).
	BayesLogloss float64
	// TrueModelLogloss is the logloss of the true model on the labels
	// actually drawn (BayesLogloss ± sampling noise).
	TrueModelLogloss float64
	// BaseRateLogloss is the logloss of predicting the positive rate for
	// every row: the figure a model must beat.
	BaseRateLogloss float64
	Intercept       float64
}

// Per-column shapes, loosely following the Criteo Kaggle data.
var (
	intMissing = [dataset.CriteoIntColumns]float64{0.45, 0, 0.2, 0.2, 0.03, 0.22, 0.04, 0.01, 0.04, 0.45, 0.04, 0.75, 0.2}
	intMu      = [dataset.CriteoIntColumns]float64{0.8, 2.5, 2.0, 1.5, 8.0, 3.5, 1.8, 2.3, 3.8, 0.3, 1.0, 0.5, 1.7}
	intSigma   = [dataset.CriteoIntColumns]float64{1.2, 2.0, 1.3, 1.0, 2.0, 1.8, 1.5, 1.0, 1.3, 0.6, 0.9, 1.2, 1.1}

	catVocab   = [dataset.CriteoCatColumns]uint64{1400, 550, 1_000_000, 200_000, 300, 20, 12_000, 600, 3, 50_000, 5_000, 1_000_000, 3_000, 27, 14_000, 500_000, 10, 5_000, 2_000, 4, 800_000, 17, 15, 100_000, 100, 50_000}
	catZipf    = [dataset.CriteoCatColumns]float64{1.2, 1.3, 1.05, 1.1, 1.4, 1.5, 1.2, 1.3, 2.0, 1.1, 1.2, 1.05, 1.2, 1.6, 1.2, 1.05, 1.5, 1.2, 1.2, 2.0, 1.05, 1.5, 1.5, 1.1, 1.4, 1.1}
	catMissing = [dataset.CriteoCatColumns]float64{0, 0, 0.03, 0.03, 0, 0.12, 0, 0, 0, 0, 0, 0.03, 0, 0, 0, 0.03, 0, 0, 0.4, 0.4, 0.03, 0, 0, 0.4, 0.04, 0.4}
)

const (
	catWeightScale = 0.35
	intWeightScale = 0.15
	targetCTR      = 0.25
)

// model holds the ground truth for one seed and hash size.
type model struct {
	seed      uint64
	criteo    *dataset.Criteo
	intWeight [dataset.CriteoIntColumns]float64
	bias      float64
}

func splitmix(x uint64) uint64 {
	x += 0x9E3779B97F4A7C15
	x = (x ^ x>>30) * 0xBF58476D1CE4E5B9
	x = (x ^ x>>27) * 0x94D049BB133111EB
	return x ^ x>>31
}

// normalish maps a hash to an approximately standard normal number (the
// Irwin-Hall sum of four uniforms, rescaled): cheap and deterministic.
func normalish(h uint64) float64 {
	s := float64(h&0xFFFF) + float64(h>>16&0xFFFF) + float64(h>>32&0xFFFF) + float64(h>>48)
	return (s/65535 - 2) * math.Sqrt(3)
}

func (m *model) slotWeight(slot uint32) float64 {
	return catWeightScale * normalish(splitmix(m.seed^0xC0FFEE^uint64(slot)<<20))
}

// catValue renders value id of column c as 8 hex digits.
func (m *model) catValue(dst []byte, c int, id uint64) []byte {
	v := uint32(splitmix(m.seed ^ uint64(c+1)<<56 ^ id))
	const hex = "0123456789abcdef"
	for s := 28; s >= 0; s -= 4 {
		dst = append(dst, hex[v>>uint(s)&15])
	}
	return dst
}

func newModel(seed uint64, hashBits int) (*model, error) {
	c, err := dataset.NewCriteo(dataset.CriteoOptions{HashBits: hashBits, Log1p: true})
	if err != nil {
		return nil, err
	}
	m := &model{seed: seed, criteo: c}
	for j := range m.intWeight {
		m.intWeight[j] = intWeightScale * normalish(splitmix(seed^0xBEEF^uint64(j+1)<<32))
	}
	// Calibrate the intercept on a sample drawn from a stream of its own.
	g := newRowGen(m, rand.New(rand.NewPCG(seed, math.MaxUint64)))
	z := make([]float64, 20000)
	for i := range z {
		z[i] = g.next()
	}
	lo, hi := -20.0, 20.0
	for it := 0; it < 60; it++ {
		mid := (lo + hi) / 2
		var mean float64
		for _, zi := range z {
			mean += sigmoid(mid + zi)
		}
		if mean/float64(len(z)) < targetCTR {
			lo = mid
		} else {
			hi = mid
		}
	}
	m.bias = (lo + hi) / 2
	return m, nil
}

func sigmoid(x float64) float64 { return 1 / (1 + math.Exp(-x)) }

// rowGen draws rows from one random stream.
type rowGen struct {
	m    *model
	r    *rand.Rand
	zipf [dataset.CriteoCatColumns]*rand.Zipf
	ints [dataset.CriteoIntColumns]int64
	has  [dataset.CriteoIntColumns]bool
	cats [dataset.CriteoCatColumns][]byte // nil when missing
	slot [dataset.CriteoCatColumns]uint32
	buf  [dataset.CriteoCatColumns][8]byte
}

func newRowGen(m *model, r *rand.Rand) *rowGen {
	g := &rowGen{m: m, r: r}
	for c := range g.zipf {
		g.zipf[c] = rand.NewZipf(r, catZipf[c], 1, catVocab[c]-1)
	}
	return g
}

// intFeature is the feature value of integer x, computed exactly as
// dataset.Criteo{Log1p: true} computes it from the text.
func intFeature(x int64) float32 {
	return float32(math.Log1p(math.Max(float64(float32(x)), 0)))
}

// next draws a row's fields and returns its logit without the intercept.
func (g *rowGen) next() float64 {
	var z float64
	for j := range g.ints {
		g.has[j] = g.r.Float64() >= intMissing[j]
		if !g.has[j] {
			continue
		}
		x := int64(math.Exp(intMu[j] + intSigma[j]*g.r.NormFloat64()))
		if j == 1 {
			x -= 2 // Criteo's second column has small negative values
		}
		g.ints[j] = x
		z += g.m.intWeight[j] * float64(intFeature(x))
	}
	for c := range g.cats {
		if g.r.Float64() < catMissing[c] {
			g.cats[c] = nil
			continue
		}
		id := g.zipf[c].Uint64()
		g.cats[c] = g.m.catValue(g.buf[c][:0], c, id)
		g.slot[c] = g.m.criteo.Slot(c, g.cats[c])
		z += g.m.slotWeight(g.slot[c])
	}
	return z
}

type chunk struct {
	data  []byte
	stats Stats
}

// Generate writes cfg.Rows rows to w and returns their statistics.
func Generate(ctx context.Context, w io.Writer, cfg Config) (Stats, error) {
	if cfg.Format == "" {
		cfg.Format = FormatCriteo
	}
	if cfg.Format != FormatCriteo && cfg.Format != FormatLIBSVM {
		return Stats{}, fmt.Errorf("gen: unknown format %q: use %q or %q", cfg.Format, FormatCriteo, FormatLIBSVM)
	}
	if cfg.Rows < 0 {
		return Stats{}, fmt.Errorf("gen: negative row count %d", cfg.Rows)
	}
	if cfg.HashBits == 0 {
		cfg.HashBits = dataset.DefaultHashBits
	}
	if cfg.ChunkRows <= 0 {
		cfg.ChunkRows = 8192
	}
	if cfg.Workers <= 0 {
		cfg.Workers = runtime.GOMAXPROCS(0)
	}
	if cfg.ModelSeed == 0 {
		cfg.ModelSeed = 1
	}
	m, err := newModel(cfg.ModelSeed, cfg.HashBits)
	if err != nil {
		return Stats{}, fmt.Errorf("gen: %w", err)
	}
	nChunks := (cfg.Rows + int64(cfg.ChunkRows) - 1) / int64(cfg.ChunkRows)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	g, gctx := errgroup.WithContext(ctx)
	// Chunk k is delivered on slots[k%window]; the semaphore keeps at most
	// window chunks in flight, so each slot has at most one pending chunk
	// and producers never block on it.
	window := int64(2 * cfg.Workers)
	slots := make([]chan chunk, window)
	for i := range slots {
		slots[i] = make(chan chunk, 1)
	}
	sem := make(chan struct{}, window)
	g.Go(func() error {
		for k := int64(0); k < nChunks; k++ {
			select {
			case sem <- struct{}{}:
			case <-gctx.Done():
				return nil
			}
			g.Go(func() error {
				rows := min(int64(cfg.ChunkRows), cfg.Rows-k*int64(cfg.ChunkRows))
				slots[k%window] <- genChunk(m, cfg, k, int(rows))
				return nil
			})
		}
		return nil
	})

	var total Stats
	bw := bufio.NewWriterSize(w, 1<<20)
	var werr error
	for k := int64(0); k < nChunks; k++ {
		var c chunk
		select {
		case c = <-slots[k%window]:
		case <-ctx.Done():
			werr = ctx.Err()
		}
		if werr != nil {
			break
		}
		<-sem
		if _, err := bw.Write(c.data); err != nil {
			werr = fmt.Errorf("gen: writing: %w", err)
			break
		}
		total.Rows += c.stats.Rows
		total.Positives += c.stats.Positives
		total.Bytes += c.stats.Bytes
		total.NNZ += c.stats.NNZ
		total.BayesLogloss += c.stats.BayesLogloss
		total.TrueModelLogloss += c.stats.TrueModelLogloss
	}
	cancel() // stops the launcher if we broke off early
	g.Wait()
	if werr != nil {
		return Stats{}, werr
	}
	if err := bw.Flush(); err != nil {
		return Stats{}, fmt.Errorf("gen: writing: %w", err)
	}
	if total.Rows > 0 {
		n := float64(total.Rows)
		total.BayesLogloss /= n
		total.TrueModelLogloss /= n
		p := float64(total.Positives) / n
		total.BaseRateLogloss = entropy(p)
	}
	total.Intercept = m.bias
	return total, nil
}

// genChunk generates chunk k from its own random stream.
func genChunk(m *model, cfg Config, k int64, rows int) chunk {
	r := rand.New(rand.NewPCG(cfg.Seed, uint64(k)))
	g := newRowGen(m, r)
	out := make([]byte, 0, rows*320)
	var st Stats
	var slots []uint32
	for i := 0; i < rows; i++ {
		z := m.bias + g.next()
		p := sigmoid(z)
		y := 0
		if r.Float64() < p {
			y = 1
			st.Positives++
		}
		st.Rows++
		st.BayesLogloss += entropy(p)
		if y == 1 {
			st.TrueModelLogloss += -math.Log(max(p, 1e-300))
		} else {
			st.TrueModelLogloss += -math.Log(max(1-p, 1e-300))
		}
		// The row's categorical slots, sorted: the LIBSVM form writes them, and
		// both forms count their distinct ones.
		slots = slots[:0]
		for c := range g.cats {
			if g.cats[c] != nil {
				slots = append(slots, g.slot[c])
			}
		}
		sortSlots(slots)
		start := len(out)
		out = strconv.AppendInt(out, int64(y), 10)
		if cfg.Format == FormatCriteo {
			for j := range g.ints {
				out = append(out, '\t')
				if g.has[j] {
					out = strconv.AppendInt(out, g.ints[j], 10)
				}
			}
			for c := range g.cats {
				out = append(out, '\t')
				out = append(out, g.cats[c]...)
			}
		} else {
			for j := range g.ints {
				if g.has[j] {
					out = append(out, ' ')
					out = strconv.AppendInt(out, int64(j+1), 10)
					out = append(out, ':')
					out = strconv.AppendFloat(out, float64(intFeature(g.ints[j])), 'g', -1, 32)
				}
			}
			for a := 0; a < len(slots); {
				b := a + 1
				for b < len(slots) && slots[b] == slots[a] {
					b++
				}
				out = append(out, ' ')
				out = strconv.AppendUint(out, uint64(slots[a])+1, 10)
				out = append(out, ':')
				out = strconv.AppendInt(out, int64(b-a), 10)
				a = b
			}
		}
		out = append(out, '\n')
		st.Bytes += int64(len(out) - start)
		for j := range g.has {
			if g.has[j] {
				st.NNZ++
			}
		}
		for k := range slots {
			if k == 0 || slots[k] != slots[k-1] {
				st.NNZ++
			}
		}
	}
	return chunk{data: out, stats: st}
}

func sortSlots(s []uint32) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

func entropy(p float64) float64 {
	if p <= 0 || p >= 1 {
		return 0
	}
	return -(p*math.Log(p) + (1-p)*math.Log(1-p))
}
