package planner

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/stratus-ml/stratus/dsl"
	"github.com/stratus-ml/stratus/operators/builtin"
)

// generatedPipeline writes a pipeline of groups×10 stages over files of 100 stages
// each: per group a load of one shared small file, a chain of two normalizes, and a
// fan-out of seven trains (four on the end of the chain, three on its middle), with
// variables and locals in the expressions.
func generatedPipeline(groups int) map[string]string {
	files := map[string]string{"data/d.svm": "1 1:0.5 3:1\n-1 2:1\n"}
	var vars strings.Builder
	vars.WriteString("variable \"lr\" {\n  type    = number\n  default = 0.1\n}\n\nlocals {\n  bits = 16\n  methods = [\"min_max\", \"standard\"]\n}\n")
	files["vars.hcl"] = vars.String()
	var b strings.Builder
	for g := 0; g < groups; g++ {
		fmt.Fprintf(&b, `load "g%[1]d" {
  source    = "data/d.svm"
  format    = "criteo"
  hash_bits = local.bits + %[2]d
}

normalize "g%[1]d_a" {
  input  = load.g%[1]d
  method = local.methods[%[1]d %% 2]
}

normalize "g%[1]d_b" {
  input  = normalize.g%[1]d_a
  method = "standard"
}
`, g, g%8)
		for i := 0; i < 7; i++ {
			in := "normalize.g%[1]d_b"
			if i >= 4 {
				in = "normalize.g%[1]d_a"
			}
			fmt.Fprintf(&b, `
train "g%[1]d_t%[2]d" {
  input         = `+in+`
  learning_rate = var.lr * %[3]d
  minibatch     = %[4]d
  epochs        = 2
}
`, g, i, i+1, 10*(i+1))
		}
		b.WriteString("\n")
		if (g+1)%10 == 0 || g == groups-1 {
			files[fmt.Sprintf("stages_%03d.hcl", g/10)] = b.String()
			b.Reset()
		}
	}
	return files
}

// BenchmarkPlan measures a whole plan of a generated 2,000-stage pipeline: parsing
// its files, resolving references, building the DAG, evaluating every stage and
// computing its key (digesting the shared source), without and with a state that
// holds every stage (and the source digest cache).
func BenchmarkPlan(b *testing.B) {
	// 2,000 stages is the target (under 1 s); the other sizes show how the
	// cost grows.
	for _, groups := range []int{50, 200, 800} {
		stages := groups * 10
		dir := b.TempDir()
		writeFiles(b, dir, generatedPipeline(groups))
		b.Run(fmt.Sprintf("stages=%d/no-state", stages), func(b *testing.B) {
			if p := planDir(b, dir, nil); len(p.Stages) != stages {
				b.Fatalf("%d stages, want %d", len(p.Stages), stages)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				planDir(b, dir, nil)
			}
		})
		if stages != 2000 {
			continue
		}
		// -target of one stage: planning skips the other stages' keys and
		// source digests, but still parses and evaluates the whole pipeline.
		// Compare with no-state above.
		b.Run(fmt.Sprintf("stages=%d/target-one", stages), func(b *testing.B) {
			opts := Options{Target: []string{"train.g100_t0"}}
			if p := planDirWith(b, dir, opts); len(p.Stages) != 4 {
				b.Fatalf("%d stages, want 4", len(p.Stages))
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				planDirWith(b, dir, opts)
			}
		})
		b.Run(fmt.Sprintf("stages=%d/all-cached", stages), func(b *testing.B) {
			st := openState(b)
			recordApply(b, st, planDir(b, dir, st))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if p := planDir(b, dir, st); p.HasChanges() {
					b.Fatal("changes after apply")
				}
			}
		})
	}
}

var benchRegistry = builtin.Registry()

// planDir loads and plans the pipeline in dir, as `stratus plan` does.
func planDir(b *testing.B, dir string, st *stateStore) *Plan {
	opts := Options{}
	if st != nil {
		opts.State = st
	}
	return planDirWith(b, dir, opts)
}

func planDirWith(b *testing.B, dir string, opts Options) *Plan {
	cfg, diags := dsl.Load(dir, dsl.LoadOptions{Registry: benchRegistry})
	if diags.HasErrors() {
		b.Fatal(diags.Error())
	}
	p, diags := Build(context.Background(), cfg, opts)
	if diags.HasErrors() {
		b.Fatal(diags.Error())
	}
	return p
}
