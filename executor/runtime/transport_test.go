package runtime_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/stratus-ml/stratus/executor/runtime"
	"github.com/stratus-ml/stratus/executor/runtime/runtimetest"
	"github.com/stratus-ml/stratus/operators/builtin"
	"github.com/stratus-ml/stratus/psstore"
)

// TestEmbeddedDefaultCallsShardsInProcess: on the embedded default the
// runtime starts psstore shards in this process, and the client the tasks
// get calls them directly rather than over loopback gRPC (psstore's
// in-process transport); $STRATUS_PSSTORE_TRANSPORT=grpc turns that off.
func TestEmbeddedDefaultCallsShardsInProcess(t *testing.T) {
	for _, tc := range []struct {
		env  string
		want bool
	}{{"", true}, {"grpc", false}} {
		t.Run("transport="+tc.env, func(t *testing.T) {
			t.Setenv(psstore.TransportEnv, tc.env)
			h := runtimetest.New(t, `
load "d" {
  source = "d.svm"
  split  = { test = 0.5, seed = 1 }
}

train "lr" {
  input = load.d
}
`)
			h.Write("d.svm", "1 1:1\n0 2:1\n1 1:1 2:0.5\n0 2:1\n")
			p := h.MustPlan()
			ctx := context.Background()
			rt, err := runtime.Open(ctx, p, runtime.Options{Registry: builtin.Registry(), StateDir: filepath.Join(h.Dir, ".stratus")})
			if err != nil {
				t.Fatal(err)
			}
			defer rt.Close()
			if len(rt.TaskEnv.PSStore) == 0 {
				t.Fatal("no psstore shards started for a train stage")
			}
			c, err := rt.Services.PSStore(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if c.InProcess() != tc.want {
				t.Fatalf("$%s=%q: the tasks' client calls its shards in-process: %v, want %v", psstore.TransportEnv, tc.env, c.InProcess(), tc.want)
			}
		})
	}
}
