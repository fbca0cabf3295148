package runtime_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/stratus-ml/stratus/dsl"
	"github.com/stratus-ml/stratus/executor/runtime"
	"github.com/stratus-ml/stratus/executor/runtime/runtimetest"
	"github.com/stratus-ml/stratus/operators/builtin"
	"github.com/stratus-ml/stratus/planner"
)

// TestOpenUsesThePlansSharedCache: a run publishes to the shared cache its plan
// looked stages up in, instead of opening the pipeline's again; a plan made
// without one still gets the pipeline's.
func TestOpenUsesThePlansSharedCache(t *testing.T) {
	h := runtimetest.New(t, "stratus {\n  cache = \"s3://team/cache\"\n}\n")
	ctx := context.Background()
	open := func(p *planner.Plan) *runtime.Runtime {
		t.Helper()
		rt, err := runtime.Open(ctx, p, runtime.Options{Registry: builtin.Registry(), StateDir: filepath.Join(h.Dir, ".stratus")})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { rt.Close() })
		return rt
	}
	if rt := open(h.MustPlan()); rt.Shared == nil || rt.Shared.URI() != "s3://team/cache" {
		t.Fatalf("a plan without a shared cache: the run's is %v, want the pipeline's", rt.Shared)
	}

	cfg, diags := dsl.Load(h.Dir, dsl.LoadOptions{Registry: h.Registry, Backends: runtime.Decoder{}})
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	sc, err := runtime.SharedCache(ctx, cfg)
	if err != nil || sc == nil {
		t.Fatalf("SharedCache = %v, %v", sc, err)
	}
	p, diags := planner.Build(ctx, cfg, planner.Options{State: h.State, Shared: sc})
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	if rt := open(p); rt.Shared != sc {
		t.Errorf("the run opened a shared cache of its own (%p), not the plan's (%p)", rt.Shared, sc)
	}
}
