package planner

import (
	"fmt"
	"strings"
	"testing"
)

// chainPipeline is n locals in a chain and m train stages that all read its end:
// the shape that made finding each stage's upstream stages quadratic.
func chainPipeline(n, m int) map[string]string {
	var b strings.Builder
	b.WriteString("locals {\n  l0 = 1\n")
	for i := 1; i < n; i++ {
		fmt.Fprintf(&b, "  l%d = local.l%d\n", i, i-1)
	}
	b.WriteString("}\nload \"d\" {\n  source = \"d.svm\"\n}\n")
	for j := 0; j < m; j++ {
		fmt.Fprintf(&b, "train \"t%d\" {\n  input  = load.d\n  epochs = local.l%d\n}\n", j, n-1)
	}
	return map[string]string{"main.hcl": b.String(), "d.svm": "1 1:1\n"}
}

// BenchmarkPlanLocalChain: plan time per stage should stay flat as the chain and
// the stage count grow together (it grew linearly, 4x per step, before the walk
// was memoised).
func BenchmarkPlanLocalChain(b *testing.B) {
	for _, size := range []int{500, 1000, 2000, 4000} {
		dir := b.TempDir()
		writeFiles(b, dir, chainPipeline(size, size/2))
		b.Run(fmt.Sprintf("locals=%d/stages=%d", size, size/2), func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if p := planDir(b, dir, nil); len(p.Stages) != size/2+1 {
					b.Fatalf("%d stages", len(p.Stages))
				}
			}
		})
	}
}
