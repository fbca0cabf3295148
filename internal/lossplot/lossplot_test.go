package lossplot

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stratus-ml/stratus/operators"
)

var t0 = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

func point(at time.Duration, trial string, t, loss float64) json.RawMessage {
	b, _ := json.Marshal(operators.Event{Time: t0.Add(at), Kind: "metric", Labels: map[string]string{"trial": trial},
		Metrics: map[string]float64{"t": t, "test_logloss": loss}})
	return b
}

func status(at time.Duration, trial, s, reason, params string) json.RawMessage {
	b, _ := json.Marshal(operators.Event{Time: t0.Add(at), Kind: "trial", Labels: map[string]string{"trial": trial, "status": s, "reason": reason, "params": params}})
	return b
}

func TestFromSeries(t *testing.T) {
	s := []json.RawMessage{
		// An earlier run of the stage, before since.
		point(0, "t-a", 0.1, 0.9),
		// This run.
		status(10*time.Second, "t-a", "RUNNING", "", `{"learning_rate":0.1}`),
		point(11*time.Second, "t-a", 0.1, 0.69),
		point(12*time.Second, "t-a", 0.3, 0.33),
		point(12*time.Second, "t-b", 0.1, 0.69),
		point(13*time.Second, "t-b", 0.3, -1), // train's mark of a non-finite loss
		point(13*time.Second, "t-b", 0.5, 5.0),
		status(14*time.Second, "t-b", "STOPPED", "diverged", `{"learning_rate":50}`),
		point(14*time.Second, "t-c", 0.1, 0.69),
		point(15*time.Second, "t-c", 0.4, 0.35),
		// t-c trained again (its time restarts): only this run counts.
		point(16*time.Second, "t-c", 0.1, 0.60),
		point(17*time.Second, "t-c", 0.4, 0.38),
		status(17*time.Second, "t-c", "DONE", "epochs", `{"learning_rate":0.5}`),
		status(17*time.Second, "t-a", "DONE", "epochs", `{"learning_rate":0.1}`),
		status(17*time.Second, "t-d", "KILLED", "killed by user", `{"learning_rate":9}`), // no points
	}
	cs, err := FromSeries(s, t0.Add(5*time.Second), "")
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 3 {
		t.Fatalf("%d curves, want t-a, t-b, t-c", len(cs))
	}
	a, b, c := cs[0], cs[1], cs[2]
	if a.Trial != "t-a" || len(a.Points) != 2 || a.Points[0].Loss != 0.69 || !a.Best {
		t.Errorf("t-a: %+v", a)
	}
	if len(b.Points) != 2 || b.Best || b.Label() != "t-b learning_rate=50 (STOPPED: diverged)" {
		t.Errorf("t-b: %+v %q", b, b.Label())
	}
	if len(c.Points) != 2 || c.Points[0].Loss != 0.60 || c.Best {
		t.Errorf("t-c: %+v", c)
	}
	if a.Label() != "t-a learning_rate=0.1 (best)" {
		t.Errorf("label %q", a.Label())
	}
	// A named best wins over the lowest loss.
	cs, _ = FromSeries(s, t0.Add(5*time.Second), "t-c")
	if !cs[2].Best || cs[0].Best {
		t.Errorf("named best not highlighted: %+v %+v", cs[0], cs[2])
	}
	// A train stage's own curve has no trial label.
	cs, _ = FromSeries([]json.RawMessage{point(0, "", 0.1, 0.69), point(0, "", 0.2, 0.5)}, time.Time{}, "")
	if len(cs) != 1 || cs[0].Trial != "" || !cs[0].Best || cs[0].Label() != "test loss (best)" {
		t.Errorf("train curve: %+v", cs)
	}

	dir := t.TempDir()
	for _, f := range []string{"x.png", "x.svg", "x.pdf"} {
		if err := Save(cs, "train.lr", filepath.Join(dir, f)); err != nil {
			t.Errorf("%s: %v", f, err)
		} else if st, err := os.Stat(filepath.Join(dir, f)); err != nil || st.Size() < 1000 {
			t.Errorf("%s: %v", f, err)
		}
	}
	if err := Save(cs, "x", filepath.Join(dir, "x.gif")); err == nil || !strings.Contains(err.Error(), ".png, .svg, .pdf") {
		t.Errorf("gif: %v", err)
	}
	if err := Save(nil, "x", filepath.Join(dir, "y.png")); err == nil {
		t.Error("saved an empty plot")
	}
}

// FuzzFromSeries feeds arbitrary series points: FromSeries returns curves or an
// error, never panics.
func FuzzFromSeries(f *testing.F) {
	f.Add([]byte(point(0, "t-a", 0.1, 0.69)), []byte(status(0, "t-a", "DONE", "", `{"x":1}`)))
	f.Add([]byte(`{"kind":"metric","metrics":{"t":1e308,"test_logloss":1e308}}`), []byte(`{"kind":"trial","labels":{"params":"{"}}`))
	f.Add([]byte(`[]`), []byte(`null`))
	f.Fuzz(func(t *testing.T, a, b []byte) {
		cs, err := FromSeries([]json.RawMessage{a, b}, time.Time{}, "")
		if err != nil {
			return
		}
		for _, c := range cs {
			_ = c.Label()
			if len(c.Points) == 0 {
				t.Errorf("curve %q without points", c.Trial)
			}
		}
	})
}
