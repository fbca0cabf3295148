package dashboard

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stratus-ml/stratus/executor"
)

// BenchmarkHubEvent measures what the dashboard adds to an apply's event path: one
// metric event of a trial, with no dashboard open and with two (whose streams are
// drained as a browser would).
func BenchmarkHubEvent(b *testing.B) {
	for _, subs := range []int{0, 2} {
		b.Run(fmt.Sprintf("subscribers=%d", subs), func(b *testing.B) {
			h := NewHub(HubOptions{})
			h.Event(executor.Event{Type: executor.StageStarted, Stage: "grid_search.g"})
			var wg sync.WaitGroup
			for range subs {
				s, _, err := h.subscribe()
				if err != nil {
					b.Fatal(err)
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range s.ch {
					}
				}()
			}
			e := executor.Event{Time: time.Now(), Type: executor.StageEvent, Stage: "grid_search.g", Kind: "metric",
				Labels:  map[string]string{"trial": "t-0123abcd"},
				Metrics: map[string]float64{"test_logloss": 0.35, "accuracy": 0.84, "auc": 0.9, "updates": 1000, "updates_per_second": 5000, "t": 1}}
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				e.Metrics["t"] = float64(i)
				h.Event(e)
			}
			b.StopTimer()
			h.Close()
			wg.Wait()
		})
	}
}
