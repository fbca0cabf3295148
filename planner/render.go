package planner

import (
	"fmt"
	"io"
	"strings"

	"github.com/stratus-ml/stratus/dsl"
	"github.com/stratus-ml/stratus/planner/dag"
)

// WriteDOT renders the stage DAG in Graphviz DOT: data flows along the edges, from a
// stage to the stages that read it; each module is a cluster. Node colours show the
// plan's actions when p is non-nil.
func WriteDOT(w io.Writer, cfg *dsl.Config, p *Plan) {
	g := graphOf(cfg, p)
	fmt.Fprintln(w, "digraph pipeline {")
	fmt.Fprintln(w, "  rankdir = \"LR\";")
	fmt.Fprintln(w, "  node [shape = \"box\", style = \"rounded,filled\", fillcolor = \"white\", fontname = \"Helvetica\"];")
	byModule := stagesByModule(cfg)
	for _, mod := range sortedKeys(byModule) {
		indent := "  "
		if mod != "" {
			fmt.Fprintf(w, "  subgraph %q {\n    label = %q;\n    style = \"dashed\";\n", "cluster_"+mod, mod)
			indent = "    "
		}
		for _, n := range byModule[mod] {
			// A real newline: %q renders it as DOT's \n line break (a literal
			// backslash-n would be escaped again and drawn as text).
			label := fmt.Sprintf("%s\n(%s)", strings.TrimPrefix(n.Addr, mod+"."), n.Stage.Schema.Name)
			attrs := fmt.Sprintf("label = %q", label)
			if s := p.stage(n.Addr); s != nil {
				label = fmt.Sprintf("%s %s", s.Action.Symbol(), label)
				attrs = fmt.Sprintf("label = %q, fillcolor = %q", label, actionColour(s.Action))
			}
			fmt.Fprintf(w, "%s%q [%s];\n", indent, n.Addr, attrs)
		}
		if mod != "" {
			fmt.Fprintln(w, "  }")
		}
	}
	for _, v := range g.Vertices() {
		for _, d := range g.DependsOn(v) {
			fmt.Fprintf(w, "  %q -> %q;\n", d, v)
		}
	}
	fmt.Fprintln(w, "}")
}

// WriteMermaid renders the stage DAG as a Mermaid flowchart.
// Like WriteDOT, it shows actions only when p is non-nil.
func WriteMermaid(w io.Writer, cfg *dsl.Config, p *Plan) {
	g := graphOf(cfg, p)
	ids := map[string]string{}
	for i, v := range g.Vertices() {
		ids[v] = fmt.Sprintf("s%d", i)
	}
	fmt.Fprintln(w, "flowchart LR")
	byModule := stagesByModule(cfg)
	for _, mod := range sortedKeys(byModule) {
		indent := "  "
		if mod != "" {
			fmt.Fprintf(w, "  subgraph %s[\"%s\"]\n", strings.ReplaceAll(mod, ".", "_"), mod)
			indent = "    "
		}
		for _, n := range byModule[mod] {
			label := fmt.Sprintf("%s<br/>%s", strings.TrimPrefix(n.Addr, mod+"."), n.Stage.Schema.Name)
			if s := p.stage(n.Addr); s != nil {
				label = s.Action.Symbol() + " " + label
			}
			fmt.Fprintf(w, "%s%s[\"%s\"]\n", indent, ids[n.Addr], label)
		}
		if mod != "" {
			fmt.Fprintln(w, "  end")
		}
	}
	for _, v := range g.Vertices() {
		for _, d := range g.DependsOn(v) {
			fmt.Fprintf(w, "  %s --> %s\n", ids[d], ids[v])
		}
	}
	for _, v := range g.Vertices() {
		if s := p.stage(v); s != nil {
			fmt.Fprintf(w, "  class %s %s\n", ids[v], s.Action)
		}
	}
	fmt.Fprintf(w, "  classDef run fill:%s\n  classDef rerun fill:%s\n  classDef cached fill:%s\n",
		actionColour(Run), actionColour(Rerun), actionColour(Cached))
}

// graphOf returns the plan's stage graph, or cfg's when there is no plan. cfg must
// be free of cycles.
func graphOf(cfg *dsl.Config, p *Plan) *dag.Graph {
	if p != nil && p.Graph != nil {
		return p.Graph
	}
	g, _ := Graph(cfg)
	if g == nil {
		g = dag.New()
	}
	return g
}

// stage is Stage for a plan that may be nil.
func (p *Plan) stage(addr string) *StagePlan {
	if p == nil {
		return nil
	}
	return p.Stage(addr)
}

func actionColour(a Action) string {
	switch a {
	case Run:
		return "#d4f7d4"
	case Rerun:
		return "#fff3c4"
	}
	return "#eeeeee"
}

func stagesByModule(cfg *dsl.Config) map[string][]*dsl.Node {
	out := map[string][]*dsl.Node{}
	for _, n := range cfg.Stages() {
		m := n.Module.Path.String()
		out[m] = append(out[m], n)
	}
	return out
}
