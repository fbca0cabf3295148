package lambda_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stratus-ml/stratus/dsl"
	"github.com/stratus-ml/stratus/executor"
	lambdabe "github.com/stratus-ml/stratus/executor/lambda"
	"github.com/stratus-ml/stratus/executor/lambda/lambdatest"
	"github.com/stratus-ml/stratus/executor/testops"
	"github.com/stratus-ml/stratus/operators"
	"github.com/stratus-ml/stratus/planner"
	"github.com/stratus-ml/stratus/state"
)

func TestMain(m *testing.M) { os.Exit(lambdatest.Main(m)) }

// emulators starts n emulators serving the test bootstrap and returns a backend
// invoking them.
func emulators(t testing.TB, n int, o lambdatest.Options) (*lambdabe.Backend, []*lambdatest.Emulator) {
	t.Helper()
	boot := lambdatest.Build(t, lambdatest.TestBootstrap)
	ems := lambdatest.Start(t, boot, n, o)
	be, err := lambdabe.New(context.Background(), lambdabe.Options{Endpoints: lambdatest.URLs(ems), MemoryMB: 1024, RetryBase: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := be.Close(); err != nil {
			t.Error(err)
		}
	})
	return be, ems
}

// task is a test.square task with params p.
func task(t testing.TB, index int, p map[string]any) *operators.Task {
	t.Helper()
	tk := &operators.Task{Stage: "test_map.m", Operator: "test_map", Kind: "test.square", Wave: "map", Index: index,
		OutputPrefix: "tasks/x/", Deadline: time.Now().Add(time.Minute)}
	if err := tk.SetParams(p); err != nil {
		t.Fatal(err)
	}
	return tk
}

// applyOn applies the pipeline src in a fresh directory on backend be and returns
// the outputs as JSON, with the summary.
func applyOn(t *testing.T, be executor.Backend, src string, obs executor.Observer) (map[string]string, *executor.Summary, error) {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "main.hcl"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	st, err := state.Open(filepath.Join(dir, ".stratus", "state"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	reg := testops.Registry()
	cfg, diags := dsl.Load(dir, dsl.LoadOptions{Registry: reg})
	if diags.HasErrors() {
		t.Fatalf("load: %s", diags.Error())
	}
	p, diags := planner.Build(context.Background(), cfg, planner.Options{State: st})
	if diags.HasErrors() {
		t.Fatalf("plan: %s", diags.Error())
	}
	if obs == nil {
		obs = executor.Observers(nil)
	}
	sum, err := executor.Apply(context.Background(), executor.Options{
		Plan: p, State: st, Backend: be, Registry: reg, Observer: obs,
		TaskEnv: operators.TaskEnv{Blob: "file://" + filepath.Join(dir, ".stratus", "blobs")},
		Retries: 3, TaskTimeout: 5 * time.Second, Lifetime: time.Second, RetryBackoff: time.Millisecond,
	})
	outs := map[string]string{}
	if sum != nil {
		for k, v := range sum.Outputs {
			b, err := state.EncodeValue(v)
			if err != nil {
				t.Fatal(err)
			}
			var x struct{ Value json.RawMessage }
			if err := json.Unmarshal(b, &x); err != nil {
				t.Fatal(err)
			}
			outs[k] = string(x.Value)
		}
	}
	return outs, sum, err
}
