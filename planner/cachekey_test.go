package planner

import (
	"testing"

	"github.com/stratus-ml/stratus/state"
)

// cacheKey length-prefixes every field, so moving a boundary between names and
// values, or between sections, always changes the key; and it is pinned, because a
// change invalidates every recorded stage.
func TestCacheKeyFields(t *testing.T) {
	base := func() *StagePlan {
		return &StagePlan{
			Operator: "train", Version: 1,
			Params:   map[string]state.Param{"ab": {Canon: "s1:c"}},
			Upstream: map[string]string{"load.a": "k1"},
			Sources:  map[string]string{},
		}
	}
	// sha256("19:stratus-stage-key/1" "5:train" "1:1" "5:param" "2:ab" "4:s1:c"
	// "8:upstream" "6:load.a" "2:k1"), computed independently.
	if got, want := cacheKey(base()), "39d8bb8a0008fbd2c36a63064e2817264f74ee65f4996e8ae6f2e731323f5918"; got != want {
		t.Fatalf("cacheKey = %s, want %s", got, want)
	}
	variants := map[string]func(*StagePlan){
		"param boundary moved":       func(s *StagePlan) { s.Params = map[string]state.Param{"a": {Canon: "bs1:c"}} },
		"param became upstream":      func(s *StagePlan) { s.Params = map[string]state.Param{}; s.Upstream["ab"] = "s1:c" },
		"param became source":        func(s *StagePlan) { s.Params = map[string]state.Param{}; s.Sources["ab"] = "s1:c" },
		"upstream key changed":       func(s *StagePlan) { s.Upstream["load.a"] = "k2" },
		"upstream added":             func(s *StagePlan) { s.Upstream["load.b"] = "k1" },
		"version bumped":             func(s *StagePlan) { s.Version = 2 },
		"operator renamed":           func(s *StagePlan) { s.Operator = "trains" },
		"operator/version boundary":  func(s *StagePlan) { s.Operator = "train1"; s.Version = 0 },
		"display only changed":       nil,
		"param value type changed":   func(s *StagePlan) { s.Params["ab"] = state.Param{Canon: "n1;"} },
		"extra param at the default": func(s *StagePlan) { s.Params["z"] = state.Param{Canon: "z"} },
	}
	k0 := cacheKey(base())
	for name, mutate := range variants {
		s := base()
		if mutate == nil {
			s.Params["ab"] = state.Param{Canon: "s1:c", Display: `"c"`}
			if cacheKey(s) != k0 {
				t.Errorf("%s: key changed", name)
			}
			continue
		}
		mutate(s)
		if cacheKey(s) == k0 {
			t.Errorf("%s: key unchanged", name)
		}
	}
}
