// Package dag is a small directed graph for pipeline dependencies: vertices are
// addresses, an edge from A to B means A depends on B. It finds cycles (every vertex
// on them, in order) and produces a deterministic topological order.
package dag

import (
	"container/heap"
	"fmt"
	"slices"
	"strings"
)

// Graph is a directed graph over string vertices. The zero value is not usable; call
// New. Insertion order of vertices breaks ties in TopoOrder, so output is stable.
type Graph struct {
	names []string
	index map[string]int
	deps  [][]int // deps[v]: vertices v depends on
	rdeps [][]int // rdeps[v]: vertices that depend on v
	edges map[[2]int]bool
}

// New returns an empty graph.
func New() *Graph {
	return &Graph{index: map[string]int{}, edges: map[[2]int]bool{}}
}

// Add adds vertex v if it is not present.
func (g *Graph) Add(v string) {
	if _, ok := g.index[v]; ok {
		return
	}
	g.index[v] = len(g.names)
	g.names = append(g.names, v)
	g.deps = append(g.deps, nil)
	g.rdeps = append(g.rdeps, nil)
}

// Connect records that from depends on to, adding either vertex if needed. Duplicate
// edges are ignored.
func (g *Graph) Connect(from, to string) {
	g.Add(from)
	g.Add(to)
	f, t := g.index[from], g.index[to]
	if g.edges[[2]int{f, t}] {
		return
	}
	g.edges[[2]int{f, t}] = true
	g.deps[f] = append(g.deps[f], t)
	g.rdeps[t] = append(g.rdeps[t], f)
}

// Has reports whether v is a vertex.
func (g *Graph) Has(v string) bool { _, ok := g.index[v]; return ok }

// Vertices returns the vertices in insertion order.
func (g *Graph) Vertices() []string { return append([]string(nil), g.names...) }

// DependsOn returns the direct dependencies of v in insertion order.
func (g *Graph) DependsOn(v string) []string { return g.list(g.deps, v) }

// Dependents returns the vertices that directly depend on v, in insertion order.
func (g *Graph) Dependents(v string) []string { return g.list(g.rdeps, v) }

func (g *Graph) list(adj [][]int, v string) []string {
	i, ok := g.index[v]
	if !ok {
		return nil
	}
	idx := append([]int(nil), adj[i]...)
	sortInts(idx)
	out := make([]string, len(idx))
	for k, j := range idx {
		out[k] = g.names[j]
	}
	return out
}

// Cycle is one cycle of the graph: Path walks it and returns to its first vertex;
// Members lists every vertex of its strongly connected component (a component may
// hold more vertices than one simple cycle visits).
type Cycle struct {
	Path    []string
	Members []string
}

func (c Cycle) String() string {
	return strings.Join(append(append([]string{}, c.Path...), c.Path[0]), " → ")
}

// Cycles returns the graph's cycles, one per strongly connected component that has
// more than one vertex or a self-edge, ordered by their earliest vertex. Tarjan's
// algorithm, O(V+E), iterative so long chains cannot overflow the stack.
func (g *Graph) Cycles() []Cycle {
	n := len(g.names)
	index := make([]int, n)
	low := make([]int, n)
	onStack := make([]bool, n)
	for i := range index {
		index[i] = -1
	}
	var stack []int
	var comps [][]int
	next := 0
	type frame struct{ v, edge int }
	for root := 0; root < n; root++ {
		if index[root] >= 0 {
			continue
		}
		call := []frame{{root, 0}}
		index[root], low[root] = next, next
		next++
		stack = append(stack, root)
		onStack[root] = true
		for len(call) > 0 {
			f := &call[len(call)-1]
			if f.edge < len(g.deps[f.v]) {
				w := g.deps[f.v][f.edge]
				f.edge++
				if index[w] < 0 {
					index[w], low[w] = next, next
					next++
					stack = append(stack, w)
					onStack[w] = true
					call = append(call, frame{w, 0})
				} else if onStack[w] && index[w] < low[f.v] {
					low[f.v] = index[w]
				}
				continue
			}
			v := f.v
			call = call[:len(call)-1]
			if len(call) > 0 {
				if p := call[len(call)-1].v; low[v] < low[p] {
					low[p] = low[v]
				}
			}
			if low[v] == index[v] {
				var comp []int
				for {
					w := stack[len(stack)-1]
					stack = stack[:len(stack)-1]
					onStack[w] = false
					comp = append(comp, w)
					if w == v {
						break
					}
				}
				if len(comp) > 1 || g.edges[[2]int{v, v}] {
					sortInts(comp)
					comps = append(comps, comp)
				}
			}
		}
	}
	sortComps(comps)
	out := make([]Cycle, 0, len(comps))
	for _, comp := range comps {
		members := make([]string, len(comp))
		for i, v := range comp {
			members[i] = g.names[v]
		}
		out = append(out, Cycle{Path: g.cyclePath(comp), Members: members})
	}
	return out
}

// cyclePath finds a simple cycle through the component's first vertex by a
// breadth-first search inside the component (so the path is a shortest one).
func (g *Graph) cyclePath(comp []int) []string {
	in := map[int]bool{}
	for _, v := range comp {
		in[v] = true
	}
	start := comp[0]
	prev := map[int]int{}
	queue := []int{start}
	seen := map[int]bool{start: true}
	for len(queue) > 0 {
		v := queue[0]
		queue = queue[1:]
		for _, w := range g.deps[v] {
			if !in[w] {
				continue
			}
			if w == start {
				var path []int
				for u := v; ; u = prev[u] {
					path = append(path, u)
					if u == start {
						break
					}
				}
				out := make([]string, len(path))
				for i := range path {
					out[i] = g.names[path[len(path)-1-i]]
				}
				return out
			}
			if !seen[w] {
				seen[w] = true
				prev[w] = v
				queue = append(queue, w)
			}
		}
	}
	return []string{g.names[start]}
}

// TopoOrder returns every vertex after all of its dependencies. Among vertices that
// are ready at the same time, insertion order wins. It fails on a cycle.
func (g *Graph) TopoOrder() ([]string, error) {
	n := len(g.names)
	pending := make([]int, n)
	ready := &intHeap{}
	for v := 0; v < n; v++ {
		pending[v] = len(g.deps[v])
		if pending[v] == 0 {
			heap.Push(ready, v)
		}
	}
	out := make([]string, 0, n)
	for ready.Len() > 0 {
		v := heap.Pop(ready).(int)
		out = append(out, g.names[v])
		for _, d := range g.rdeps[v] {
			pending[d]--
			if pending[d] == 0 {
				heap.Push(ready, d)
			}
		}
	}
	if len(out) != n {
		cs := g.Cycles()
		if len(cs) > 0 {
			return nil, fmt.Errorf("dependency cycle: %s", cs[0])
		}
		return nil, fmt.Errorf("dependency cycle")
	}
	return out, nil
}

// Ancestors returns every vertex v depends on, directly or not, in insertion order.
func (g *Graph) Ancestors(v string) []string {
	i, ok := g.index[v]
	if !ok {
		return nil
	}
	seen := make([]bool, len(g.names))
	stack := append([]int(nil), g.deps[i]...)
	for len(stack) > 0 {
		u := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if seen[u] {
			continue
		}
		seen[u] = true
		stack = append(stack, g.deps[u]...)
	}
	var out []string
	for u, s := range seen {
		if s {
			out = append(out, g.names[u])
		}
	}
	return out
}

type intHeap []int

func (h intHeap) Len() int           { return len(h) }
func (h intHeap) Less(i, j int) bool { return h[i] < h[j] }
func (h intHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *intHeap) Push(x any)        { *h = append(*h, x.(int)) }
func (h *intHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

func sortInts(a []int) { slices.Sort(a) }

func sortComps(c [][]int) {
	slices.SortFunc(c, func(a, b []int) int { return a[0] - b[0] })
}
