package gen

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"strconv"
)

// RatingsConfig describes generated low-rank ratings: users × items with
// true rating mean + b_u + b_i + ⟨p_u, q_i⟩ + noise, where biases are
// N(0, 0.3²), factor entries N(0, 1/rank) (so ⟨p, q⟩ has unit
// variance) and noise N(0, Noise²); Ratings (user, item) pairs are drawn
// uniformly (a pair may repeat). Seed draws the ratings and ModelSeed the
// model (0: Seed), so files with different seeds and one model seed are
// train and test sets of one problem.
type RatingsConfig struct {
	Users, Items, Ratings, Rank int
	Mean, Noise                 float64
	Seed, ModelSeed             uint64
	// Sep separates the fields: "," (default), "\t" or "::".
	Sep string
	// Header writes a "user,item,rating,timestamp" line first.
	Header bool
}

// RatingsTruth is the generating model, for tests that compare against it;
// TrueRMSE is its RMSE on the drawn ratings (about Noise: no model does
// better on new ratings).
type RatingsTruth struct {
	TrueRMSE           float64
	UserBias, ItemBias []float64
	P, Q               [][]float64
	Mean               float64
}

// Predict is the noiseless rating of user u for item i.
func (t *RatingsTruth) Predict(u, i int) float64 {
	z := t.Mean + t.UserBias[u] + t.ItemBias[i]
	for k := range t.P[u] {
		z += t.P[u][k] * t.Q[i][k]
	}
	return z
}

// Ratings writes generated ratings to w as user,item,rating,timestamp lines
// (ids from 1) and returns the generating model.
func Ratings(w io.Writer, c RatingsConfig) (*RatingsTruth, error) {
	if c.Users < 1 || c.Items < 1 || c.Rank < 1 || c.Ratings < 0 {
		return nil, fmt.Errorf("gen: users, items and rank must be at least 1")
	}
	if c.Sep == "" {
		c.Sep = ","
	}
	ms := c.ModelSeed
	if ms == 0 {
		ms = c.Seed
	}
	r := rand.New(rand.NewPCG(ms, 0x5eed))
	t := &RatingsTruth{Mean: c.Mean, UserBias: make([]float64, c.Users), ItemBias: make([]float64, c.Items)}
	sd := 1 / math.Sqrt(float64(c.Rank))
	vec := func() []float64 {
		v := make([]float64, c.Rank)
		for k := range v {
			v[k] = r.NormFloat64() * sd
		}
		return v
	}
	for u := range t.UserBias {
		t.UserBias[u] = 0.3 * r.NormFloat64()
		t.P = append(t.P, vec())
	}
	for i := range t.ItemBias {
		t.ItemBias[i] = 0.3 * r.NormFloat64()
		t.Q = append(t.Q, vec())
	}
	r = rand.New(rand.NewPCG(c.Seed, 0xda7a))
	bw := bufio.NewWriterSize(w, 1<<16)
	if c.Header {
		fmt.Fprintf(bw, "user%sitem%srating%stimestamp\n", c.Sep, c.Sep, c.Sep)
	}
	buf := make([]byte, 0, 64)
	var sq float64
	for n := 0; n < c.Ratings; n++ {
		u, i := r.IntN(c.Users), r.IntN(c.Items)
		e := c.Noise * r.NormFloat64()
		y := t.Predict(u, i) + e
		sq += e * e
		buf = strconv.AppendInt(buf[:0], int64(u+1), 10)
		buf = append(buf, c.Sep...)
		buf = strconv.AppendInt(buf, int64(i+1), 10)
		buf = append(buf, c.Sep...)
		buf = strconv.AppendFloat(buf, y, 'f', 3, 64)
		buf = append(buf, c.Sep...)
		buf = strconv.AppendInt(buf, 978300000+int64(n), 10)
		buf = append(buf, '\n')
		if _, err := bw.Write(buf); err != nil {
			return nil, err
		}
	}
	if c.Ratings > 0 {
		t.TrueRMSE = math.Sqrt(sq / float64(c.Ratings))
	}
	return t, bw.Flush()
}
