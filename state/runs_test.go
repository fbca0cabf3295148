package state

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestRuns(t *testing.T) {
	s, _ := openTemp(t)
	if runs, err := s.Runs(); err != nil || len(runs) != 0 {
		t.Fatalf("empty store: %v %v", runs, err)
	}
	if _, err := s.Run("latest"); !errors.Is(err, ErrNoRun) {
		t.Fatalf("latest of none: %v", err)
	}
	before := serial(t, s)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	// Put out of order: listing is by start time.
	for i, id := range []string{"r-bb01", "r-aa01", "r-aa02"} {
		r := &RunRecord{ID: id, Started: t0.Add(time.Duration(2-i) * time.Minute), Status: "succeeded",
			Stages: []RunStage{{Address: "train.t", Action: "ran", Key: "k", Metrics: map[string]float64{"auc": float64(i)}}}}
		if err := s.PutRun(r); err != nil {
			t.Fatal(err)
		}
	}
	if serial(t, s) != before {
		t.Error("recording a run bumped the serial, making saved plans stale")
	}
	runs, err := s.Runs()
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range runs {
		ids = append(ids, r.ID)
	}
	if strings.Join(ids, " ") != "r-aa02 r-aa01 r-bb01" {
		t.Fatalf("order %v", ids)
	}
	for ref, want := range map[string]string{"latest": "r-bb01", "latest~2": "r-aa02", "r-bb": "r-bb01", "r-aa01": "r-aa01"} {
		r, err := s.Run(ref)
		if err != nil || r.ID != want {
			t.Errorf("Run(%q) = %v, %v; want %s", ref, r, err, want)
		}
	}
	if _, err := s.Run("r-aa"); err == nil || !strings.Contains(err.Error(), "ambiguous") {
		t.Errorf("ambiguous prefix: %v", err)
	}
	for _, ref := range []string{"latest~3", "latest~x", "r-zz"} {
		if _, err := s.Run(ref); !errors.Is(err, ErrNoRun) {
			t.Errorf("Run(%q): %v", ref, err)
		}
	}
	if err := s.PutRun(&RunRecord{ID: "a/b"}); err == nil {
		t.Error("an ID with a slash was accepted")
	}
}
