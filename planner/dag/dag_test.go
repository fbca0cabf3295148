package dag

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// build makes a graph from "a->b" edges (a depends on b) after adding vertices in
// the given order.
func build(vertices []string, edges ...string) *Graph {
	g := New()
	for _, v := range vertices {
		g.Add(v)
	}
	for _, e := range edges {
		from, to, ok := strings.Cut(e, "->")
		if !ok {
			panic("bad edge " + e)
		}
		g.Connect(from, to)
	}
	return g
}

func TestTopoOrder(t *testing.T) {
	tests := []struct {
		name     string
		vertices []string
		edges    []string
		want     []string
	}{
		{"empty", nil, nil, []string{}},
		{"independent vertices keep insertion order", []string{"c", "a", "b"}, nil, []string{"c", "a", "b"}},
		{"chain declared backwards", []string{"train", "normalize", "load"},
			[]string{"train->normalize", "normalize->load"}, []string{"load", "normalize", "train"}},
		{"diamond: ties broken by insertion order", []string{"load", "b", "a", "join"},
			[]string{"a->load", "b->load", "join->a", "join->b"}, []string{"load", "b", "a", "join"}},
		{"fan-out then unrelated", []string{"x", "l", "t1", "t2", "t3"},
			[]string{"t1->l", "t2->l", "t3->l"}, []string{"x", "l", "t1", "t2", "t3"}},
		{"vertex added by an edge only", []string{"a"}, []string{"a->z"}, []string{"z", "a"}},
		{"duplicate edges are one", []string{"a", "b"}, []string{"b->a", "b->a"}, []string{"a", "b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := build(tt.vertices, tt.edges...)
			got, err := g.TopoOrder()
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("TopoOrder = %v, want %v", got, tt.want)
			}
			if cs := g.Cycles(); len(cs) != 0 {
				t.Errorf("Cycles = %v on an acyclic graph", cs)
			}
		})
	}
}

// The order must not depend on map iteration: the same graph built many times
// orders the same way, and every vertex comes after its dependencies.
func TestTopoOrderStable(t *testing.T) {
	mk := func() *Graph {
		g := New()
		for i := 0; i < 50; i++ {
			g.Add(fmt.Sprintf("v%02d", (i*37)%50))
		}
		for i := 0; i < 50; i++ {
			for _, j := range []int{i / 2, i / 3, i / 5} {
				if j < i {
					g.Connect(fmt.Sprintf("v%02d", i), fmt.Sprintf("v%02d", j))
				}
			}
		}
		return g
	}
	first, err := mk().TopoOrder()
	if err != nil {
		t.Fatal(err)
	}
	for run := 0; run < 20; run++ {
		got, _ := mk().TopoOrder()
		if !reflect.DeepEqual(got, first) {
			t.Fatalf("run %d: order differs:\n%v\n%v", run, got, first)
		}
	}
	g := mk()
	pos := map[string]int{}
	for i, v := range first {
		pos[v] = i
	}
	for _, v := range g.Vertices() {
		for _, d := range g.DependsOn(v) {
			if pos[d] > pos[v] {
				t.Errorf("%s comes before its dependency %s", v, d)
			}
		}
	}
}

func TestCycles(t *testing.T) {
	tests := []struct {
		name     string
		vertices []string
		edges    []string
		want     []Cycle
	}{
		{"self-loop", []string{"a", "b"}, []string{"a->a", "b->a"},
			[]Cycle{{Path: []string{"a"}, Members: []string{"a"}}}},
		{"two-cycle", []string{"x", "a", "b"}, []string{"a->b", "b->a", "x->a"},
			[]Cycle{{Path: []string{"a", "b"}, Members: []string{"a", "b"}}}},
		{"three-cycle declared out of order", []string{"train", "load", "normalize"},
			[]string{"load->train", "normalize->load", "train->normalize"},
			[]Cycle{{Path: []string{"train", "normalize", "load"}, Members: []string{"train", "load", "normalize"}}}},
		{"component larger than its shortest cycle", []string{"a", "b", "c"},
			[]string{"a->b", "b->a", "b->c", "c->a"},
			[]Cycle{{Path: []string{"a", "b"}, Members: []string{"a", "b", "c"}}}},
		{"two separate cycles, ordered by earliest vertex", []string{"p", "q", "a", "b", "c"},
			[]string{"c->a", "a->b", "b->c", "p->q", "q->p", "c->p"},
			[]Cycle{
				{Path: []string{"p", "q"}, Members: []string{"p", "q"}},
				{Path: []string{"a", "b", "c"}, Members: []string{"a", "b", "c"}},
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := build(tt.vertices, tt.edges...)
			got := g.Cycles()
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Cycles =\n  %+v\nwant\n  %+v", got, tt.want)
			}
			// Every path is a real cycle: each step is an edge, and the last
			// vertex leads back to the first.
			for _, c := range got {
				for i, v := range c.Path {
					next := c.Path[(i+1)%len(c.Path)]
					if !contains(g.DependsOn(v), next) {
						t.Errorf("cycle %s: no edge %s -> %s", c, v, next)
					}
				}
			}
			_, err := g.TopoOrder()
			if err == nil {
				t.Fatal("TopoOrder succeeded on a cyclic graph")
			}
			if !strings.Contains(err.Error(), got[0].String()) {
				t.Errorf("TopoOrder error %q does not show the cycle %s", err, got[0])
			}
		})
	}
}

func TestCycleString(t *testing.T) {
	c := Cycle{Path: []string{"load.a", "train.t", "normalize.n"}}
	if got, want := c.String(), "load.a → train.t → normalize.n → load.a"; got != want {
		t.Errorf("String = %q, want %q", got, want)
	}
	if got, want := (Cycle{Path: []string{"a"}}).String(), "a → a"; got != want {
		t.Errorf("self-loop String = %q, want %q", got, want)
	}
}

// A 10,000-vertex chain is ordered and searched for cycles without recursion
// (a recursive DFS would need a frame per vertex), and a cycle closing it names
// every vertex.
func TestLongChain(t *testing.T) {
	const n = 10000
	g := New()
	name := func(i int) string { return fmt.Sprintf("s%05d", i) }
	for i := n - 1; i >= 0; i-- {
		g.Add(name(i))
	}
	for i := 1; i < n; i++ {
		g.Connect(name(i), name(i-1))
	}
	order, err := g.TopoOrder()
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range order {
		if v != name(i) {
			t.Fatalf("order[%d] = %s, want %s", i, v, name(i))
		}
	}
	if got := len(g.Ancestors(name(n - 1))); got != n-1 {
		t.Errorf("Ancestors of the last vertex: %d, want %d", got, n-1)
	}
	if cs := g.Cycles(); len(cs) != 0 {
		t.Fatalf("found %d cycles in a chain", len(cs))
	}

	g.Connect(name(0), name(n-1))
	cs := g.Cycles()
	if len(cs) != 1 {
		t.Fatalf("found %d cycles, want 1", len(cs))
	}
	if len(cs[0].Path) != n || len(cs[0].Members) != n {
		t.Errorf("cycle has path %d and members %d, want %d each", len(cs[0].Path), len(cs[0].Members), n)
	}
}

func TestNeighbours(t *testing.T) {
	g := build([]string{"t", "n", "l", "x"}, "t->n", "t->l", "n->l", "x->t")
	if got, want := g.DependsOn("t"), []string{"n", "l"}; !reflect.DeepEqual(got, want) {
		t.Errorf("DependsOn(t) = %v, want %v", got, want)
	}
	if got, want := g.Dependents("l"), []string{"t", "n"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Dependents(l) = %v, want %v", got, want)
	}
	if got, want := g.Ancestors("x"), []string{"t", "n", "l"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Ancestors(x) = %v, want %v", got, want)
	}
	if g.DependsOn("missing") != nil || g.Ancestors("missing") != nil {
		t.Error("unknown vertex has neighbours")
	}
	if !g.Has("x") || g.Has("y") {
		t.Error("Has is wrong")
	}
	v := g.Vertices()
	v[0] = "changed"
	if g.Vertices()[0] != "t" {
		t.Error("Vertices returned the graph's own slice")
	}
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}
