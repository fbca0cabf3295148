package local

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stratus-ml/stratus/operators"
	"github.com/stratus-ml/stratus/operators/taskenv"
)

// TestKillEvery: with churn rehearsal on, an attempt that runs long is killed — its
// context cancelled and an error saying so returned — and short ones mostly finish.
func TestKillEvery(t *testing.T) {
	reg := operators.MustRegistry(&operators.Operator{
		Schema: &operators.Schema{Name: "sleeper", Version: 1},
		Handlers: map[string]operators.Handler{"sleep": func(ctx context.Context, _ operators.Env, t *operators.Task) (*operators.Result, error) {
			var d time.Duration
			if err := t.DecodeParams(&d); err != nil {
				return nil, err
			}
			select {
			case <-time.After(d):
				return &operators.Result{}, nil
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}},
	})
	b := New(reg, taskenv.New(), Options{KillEvery: 20 * time.Millisecond})
	defer b.Close()
	task := func(d time.Duration) *operators.Task {
		tk := &operators.Task{Stage: "s.x", Kind: "sleep", Wave: "w", Deadline: time.Now().Add(time.Minute)}
		if err := tk.SetParams(d); err != nil {
			t.Fatal(err)
		}
		return tk
	}
	_, _, err := b.Invoke(context.Background(), task(10*time.Second))
	if err == nil || !strings.Contains(err.Error(), "function killed") {
		t.Fatalf("a 10 s task with kill_every 20ms: %v", err)
	}
	ok := 0
	for i := 0; i < 50; i++ {
		if _, _, err := b.Invoke(context.Background(), task(0)); err == nil {
			ok++
		}
	}
	if ok < 40 {
		t.Errorf("only %d of 50 instant tasks survived a 20ms mean kill time", ok)
	}
}
