package dag

import (
	"context"
	"errors"
	"sync"
	"testing"
)

// chain: c depends on b depends on a; d depends on a; e is alone.
func walkGraph() *Graph {
	g := New()
	for _, v := range []string{"a", "b", "c", "d", "e"} {
		g.Add(v)
	}
	g.Connect("b", "a")
	g.Connect("c", "b")
	g.Connect("d", "a")
	return g
}

func TestWalkOrderAndDone(t *testing.T) {
	g := walkGraph()
	var mu sync.Mutex
	var seen []string
	visited := map[string]bool{}
	res, err := g.Walk(context.Background(), WalkOptions{Parallelism: 1, Done: map[string]bool{"a": true}}, func(_ context.Context, v string) error {
		mu.Lock()
		defer mu.Unlock()
		for _, d := range g.DependsOn(v) {
			if d != "a" && !visited[d] {
				t.Errorf("%s visited before its dependency %s", v, d)
			}
		}
		visited[v] = true
		seen = append(seen, v)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// a is done already; with one slot the walk follows the topological order.
	if got := len(seen); got != 4 || seen[0] != "b" {
		t.Errorf("visits %q, want b c d e in topological order without a", seen)
	}
	for v, r := range res {
		if r.Outcome != Visited {
			t.Errorf("%s: %s", v, r.Outcome)
		}
	}
}

func TestWalkFailureSkipsDependents(t *testing.T) {
	g := walkGraph()
	boom := errors.New("boom")
	res, err := g.Walk(context.Background(), WalkOptions{Parallelism: 4}, func(_ context.Context, v string) error {
		if v == "b" {
			return boom
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if r := res["b"]; r.Outcome != Failed || !errors.Is(r.Err, boom) {
		t.Errorf("b: %+v", r)
	}
	if r := res["c"]; r.Outcome != Skipped || r.Upstream != "b" {
		t.Errorf("c: %+v, want skipped because of b", r)
	}
	if res["d"].Outcome != Visited || res["e"].Outcome != Visited {
		t.Errorf("independent vertices: d %s, e %s", res["d"].Outcome, res["e"].Outcome)
	}
}

func TestWalkStopOnError(t *testing.T) {
	g := New()
	g.Add("x")
	g.Add("y")
	g.Connect("y", "x")
	g.Add("z")
	g.Connect("z", "x")
	// With one slot, x fails first; y and z were ready only after x, so neither
	// starts, and both are skipped (their dependency failed).
	res, _ := g.Walk(context.Background(), WalkOptions{Parallelism: 1, StopOnError: true}, func(_ context.Context, v string) error {
		if v == "x" {
			return errors.New("x failed")
		}
		return nil
	})
	if res["y"].Outcome != Skipped || res["z"].Outcome != Skipped {
		t.Errorf("y %s, z %s", res["y"].Outcome, res["z"].Outcome)
	}
	// Independent vertices are not started once a visit failed.
	g2 := New()
	g2.Add("p")
	g2.Add("q")
	res, _ = g2.Walk(context.Background(), WalkOptions{Parallelism: 1, StopOnError: true}, func(_ context.Context, v string) error {
		return errors.New(v + " failed")
	})
	if res["p"].Outcome != Failed || res["q"].Outcome != NotVisited {
		t.Errorf("p %s, q %s: want failed, not visited", res["p"].Outcome, res["q"].Outcome)
	}
}

func TestWalkCancel(t *testing.T) {
	g := walkGraph()
	ctx, cancel := context.WithCancel(context.Background())
	res, _ := g.Walk(ctx, WalkOptions{Parallelism: 1}, func(ctx context.Context, v string) error {
		cancel() // the first visit cancels the walk: nothing else starts
		<-ctx.Done()
		return ctx.Err()
	})
	started := 0
	for _, r := range res {
		if r.Outcome != NotVisited && r.Outcome != Skipped {
			started++
		}
	}
	if started != 1 {
		t.Errorf("%d visits after cancel, want 1: %+v", started, res)
	}
}

func TestWalkCycle(t *testing.T) {
	g := New()
	g.Connect("a", "b")
	g.Connect("b", "a")
	if _, err := g.Walk(context.Background(), WalkOptions{}, func(context.Context, string) error {
		t.Fatal("visited a cyclic graph")
		return nil
	}); err == nil {
		t.Fatal("no error for a cycle")
	}
}
