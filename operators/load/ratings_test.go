package load_test

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stratus-ml/stratus/dataset"
	"github.com/stratus-ml/stratus/dataset/gen"
	"github.com/stratus-ml/stratus/dataset/manifest"
	"github.com/stratus-ml/stratus/executor/runtime/runtimetest"
)

// TestLoadRatings loads generated "::"-separated ratings with a header and a
// three-way split; the manifests' summaries add up to what the file holds,
// counted here the plain way.
func TestLoadRatings(t *testing.T) {
	var buf bytes.Buffer
	if _, err := gen.Ratings(&buf, gen.RatingsConfig{Users: 50, Items: 40, Ratings: 3000, Rank: 3, Mean: 3.5, Noise: 0.2, Seed: 3, Sep: "::", Header: true}); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "ratings.dat")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	users, items := map[string]bool{}, map[string]bool{}
	var n int64
	var sum float64
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n")[1:] {
		f := strings.Split(line, "::")
		users[f[0]], items[f[1]] = true, true
		var r float64
		fmt.Sscan(f[2], &r)
		n++
		sum += float64(float32(r))
		lo, hi = math.Min(lo, float64(float32(r))), math.Max(hi, float64(float32(r)))
	}
	h := runtimetest.New(t, fmt.Sprintf(`
load "ml" {
  source = %q
  format = "ratings"
  split  = { test = 0.2, validation = 0.1, seed = 1 }
}
`, filepath.ToSlash(path)))
	h.MustApply()
	val := h.Output("load.ml")
	var total manifest.RatingsSummary
	var mean float64
	for _, ds := range manifest.Datasets {
		m := h.Dataset(val.GetAttr(ds))
		if m.Ratings == nil || m.Rows == 0 || m.Ratings.Ratings != m.Rows || m.Format.Name != "ratings" {
			t.Fatalf("%s: rows %d, format %q, summary %+v", ds, m.Rows, m.Format.Name, m.Ratings)
		}
		total.Ratings += m.Ratings.Ratings
		mean += m.Ratings.Mean * float64(m.Ratings.Ratings)
		if ds == manifest.Train {
			total.Users, total.Items = m.Ratings.Users, m.Ratings.Items
		}
		for _, r := range h.Rows(m) {
			if _, _, ok := dataset.RatingPair(r.Indices); !ok {
				t.Fatalf("%s: row %+v is not a (user, item) pair", ds, r)
			}
		}
	}
	if total.Ratings != n || math.Abs(mean/float64(n)-sum/float64(n)) > 1e-9 {
		t.Errorf("%d ratings of mean %g in the manifests; the file has %d of mean %g", total.Ratings, mean/float64(n), n, sum/float64(n))
	}
	if total.Users != int64(len(users)) || total.Items != int64(len(items)) {
		t.Errorf("train set: %d users, %d items; the file has %d and %d (every one rates ~60 times, so the train set sees all)", total.Users, total.Items, len(users), len(items))
	}
}

func TestLoadRatingsBadLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.csv")
	if err := os.WriteFile(path, []byte("user,item,rating\n1,2,3\n4,5,five\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	h := runtimetest.New(t, fmt.Sprintf(`
load "r" {
  source = %q
  format = "ratings"
}
`, filepath.ToSlash(path)))
	msg, _ := stageError(t, h, "load.r")
	if !strings.Contains(msg, "r.csv:3:5") || !strings.Contains(msg, "rating must be a number") {
		t.Fatalf("error %q; want r.csv:3:5 and what is wrong", msg)
	}
}
