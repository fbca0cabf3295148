package planner

import (
	"strings"
	"testing"
)

// WriteDOT and WriteMermaid draw the DAG of a configuration without a plan (no
// action marks), and with one (marks and colours).
func TestRender(t *testing.T) {
	cfg := load(t, pipelineDir(t, withData(map[string]string{"main.hcl": basePipeline})))
	p := plan(t, cfg, nil)
	for _, tt := range []struct {
		name  string
		plan  *Plan
		write func(*strings.Builder, *Plan)
		want  []string
		not   []string
	}{
		{"dot without plan", nil, func(b *strings.Builder, p *Plan) { WriteDOT(b, cfg, p) },
			[]string{`"train.final" [label = "train.final\n(train)"];`, `"grid_search.tune" -> "train.final";`, `"normalize.adult" -> "train.final";`},
			[]string{"+ ", "#d4f7d4\"]"}},
		{"dot with plan", p, func(b *strings.Builder, p *Plan) { WriteDOT(b, cfg, p) },
			[]string{`"train.final" [label = "+ train.final\n(train)", fillcolor = "#d4f7d4"];`, `"load.other" -> "train.other";`},
			nil},
		{"mermaid without plan", nil, func(b *strings.Builder, p *Plan) { WriteMermaid(b, cfg, p) },
			[]string{`s4["train.final<br/>train"]`, "s3 --> s4", "classDef run"},
			[]string{"class s0 run"}},
		{"mermaid with plan", p, func(b *strings.Builder, p *Plan) { WriteMermaid(b, cfg, p) },
			[]string{`s4["+ train.final<br/>train"]`, "class s0 run"},
			nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var b strings.Builder
			tt.write(&b, tt.plan)
			out := b.String()
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("no %q in:\n%s", w, out)
				}
			}
			for _, n := range tt.not {
				if strings.Contains(out, n) {
					t.Errorf("%q in:\n%s", n, out)
				}
			}
			if edges := strings.Count(out, "\" -> \"") + strings.Count(out, " --> "); edges != 6 {
				t.Errorf("%d edges, want 6:\n%s", edges, out)
			}
		})
	}
}
