package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stratus-ml/stratus/executor/runtime"
	"github.com/stratus-ml/stratus/executor/runtime/runtimetest"
	"github.com/stratus-ml/stratus/internal/testtools"
	"github.com/stratus-ml/stratus/operators"
	"github.com/stratus-ml/stratus/psstore"
)

// load's and normalize's statistics reduced through two `stratus psstore
// serve` processes (over gRPC) equal, byte for byte, those reduced from the
// tasks' blob copies without psstore, on a9a; no key is left on the shards.
func TestStatsReducedThroughPSStoreServe(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the stratus binary")
	}
	bin, err := buildStratus()
	if err != nil {
		t.Fatal(err)
	}
	const token = "stats-reduce"
	var addrs []string
	for range 2 {
		addr := testtools.FreeAddr(t)
		var out bytes.Buffer
		cmd := exec.Command(bin, "psstore", "serve", "--addr", addr, "--data-dir", t.TempDir())
		cmd.Env = append(os.Environ(), runtime.EnvToken+"="+token)
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		t.Cleanup(func() {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			<-done
		})
		if err := testtools.WaitTCP(addr, done, time.Minute); err != nil {
			t.Fatalf("%v\n%s", err, out.String())
		}
		addrs = append(addrs, addr)
	}
	root, ok := testtools.RepoRoot()
	if !ok {
		t.Fatal("no repository root")
	}
	src := fmt.Sprintf(`
load "adult" {
  source      = %q
  test_source = %q
  tasks       = 4
}
normalize "adult" {
  input  = load.adult
  method = "standard"
}
`, filepath.ToSlash(filepath.Join(root, "testdata", "a9a")), filepath.ToSlash(filepath.Join(root, "testdata", "a9a.t")))

	plain := runtimetest.New(t, src)
	plain.MustApply()
	h := runtimetest.New(t, src)
	t.Setenv(operators.EnvStatsReduce, "psstore")
	h.Env.PSStore, h.Env.Token = addrs, token
	_, rec := h.MustApply()
	for _, stage := range []string{"load.adult", "normalize.adult"} {
		reduced := false
		for _, n := range rec.Notes(stage) {
			reduced = reduced || strings.Contains(n, "statistics reduced in psstore")
		}
		if !reduced {
			t.Errorf("%s: no note that its statistics were reduced in psstore: %q", stage, rec.Notes(stage))
		}
		want, got := plain.Output(stage), h.Output(stage)
		for _, ds := range []string{"train", "test"} {
			wm, gm := plain.Dataset(want.GetAttr(ds)), h.Dataset(got.GetAttr(ds))
			wb, _ := plain.Stats(wm).MarshalBinary()
			gb, _ := h.Stats(gm).MarshalBinary()
			if gm.Rows != wm.Rows || gm.NNZ != wm.NNZ || !bytes.Equal(wb, gb) {
				t.Errorf("%s %s: %d rows, %d entries, statistics equal: %v; want %d rows, %d entries, equal", stage, ds, gm.Rows, gm.NNZ, bytes.Equal(wb, gb), wm.Rows, wm.NNZ)
			}
		}
	}
	ctx := context.Background()
	c, err := psstore.Dial(ctx, addrs, psstore.WithToken(token))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if keys, err := c.List(ctx, "stratus/stats/"); err != nil || len(keys) > 0 {
		t.Errorf("the shards hold %d statistics keys after the stages (%v), want none", len(keys), err)
	}
}
