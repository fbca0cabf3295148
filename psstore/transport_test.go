package psstore

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// The package's tests are the contract of the client and the shards, and
// they run over both transports: runTransports (called by TestMain) runs
// them once as they come — clients of shards started by StartLocal call
// them in-process — and once more with $STRATUS_PSSTORE_TRANSPORT=grpc,
// so every Dial in them goes over loopback gRPC. Tests whose shards are
// child processes, or that are about the network itself, are gRPC-only by
// nature and call grpcOnly to run once. Benchmarks and fuzzing run once
// (BenchmarkPullPush measures both transports itself).
func runTransports(m *testing.M) int {
	if !flag.Parsed() {
		flag.Parse()
	}
	once := false
	for _, name := range []string{"test.bench", "test.fuzz", "test.list"} {
		if f := flag.Lookup(name); f != nil && f.Value.String() != "" {
			once = true
		}
	}
	if once || os.Getenv(TransportEnv) != "" {
		return m.Run()
	}
	code := m.Run()
	fmt.Printf("psstore: the same tests again over gRPC ($%s=grpc)\n", TransportEnv)
	os.Setenv(TransportEnv, "grpc")
	secondPass = true
	defer os.Unsetenv(TransportEnv)
	if c := m.Run(); c != 0 {
		code = c
	}
	return code
}

// secondPass is set while runTransports repeats the tests over gRPC.
var secondPass bool

// grpcOnly skips a test in the gRPC pass: it does not depend on the
// transport (its shards run in another process, or it is about the
// network), so the first pass covered it.
func grpcOnly(t *testing.T) {
	t.Helper()
	if secondPass {
		t.Skip("transport-independent: run in the first pass")
	}
}

// overGRPC skips a test in the in-process pass: it tests what only the gRPC
// path does — the shard-map gate is a gRPC interceptor, and the in-process
// transport serves the embedded default's own shards, whose map never changes.
func overGRPC(t *testing.T) {
	t.Helper()
	if !secondPass && os.Getenv(TransportEnv) == "" {
		t.Skip("the map gate is the gRPC path's: run in the gRPC pass")
	}
}

// wantInProcess is whether clients of StartLocal's shards call them
// in-process in this pass.
func wantInProcess() bool { return os.Getenv(TransportEnv) != "grpc" }

// TestTransportSelection: a client of shards started by StartLocal in this
// process calls them directly, unless gRPC is asked for, the token is
// wrong (gRPC then refuses it and counts the refusal) or TLS is on.
func TestTransportSelection(t *testing.T) {
	lc, c := startCluster(t, 2)
	if got := c.InProcess(); got != wantInProcess() {
		t.Fatalf("InProcess() = %v with $%s=%q", got, TransportEnv, os.Getenv(TransportEnv))
	}
	g := dial(t, lc.Addrs(), lc.Token(), WithTransport(TransportGRPC))
	if g.InProcess() {
		t.Fatal("WithTransport(TransportGRPC) still calls the shards in-process")
	}
	before := lc.Servers()[0].AuthFailures()
	if _, err := Dial(testCtx(t), lc.Addrs(), WithToken("wrong")); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("Dial with a wrong token: %v, want Unauthenticated", err)
	}
	if lc.Servers()[0].AuthFailures() == before {
		t.Fatal("a wrong token was not counted as a refusal")
	}
	// Both transports see the same store.
	ctx := testCtx(t)
	if err := c.CreateModel(ctx, ModelSpec{Name: "m", Dim: 10, LearningRate: 1}); err != nil {
		t.Fatal(err)
	}
	if err := c.PushSparse(ctx, "m", []uint64{3, 4, 3}, []float32{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	if err := c.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	got := make([]float32, 2)
	if err := g.PullSparse(ctx, "m", []uint64{3, 4}, got); err != nil || !slices.Equal(got, []float32{-4, -2}) {
		t.Fatalf("pulled over gRPC: %v, %v; want [-4 -2]", got, err)
	}
	st, err := g.ModelStats(ctx, "m")
	if err != nil || st.Pushes != 1 || st.Updates != 2 {
		t.Fatalf("stats over gRPC after one push of 2 keys: %+v, %v", st, err)
	}
}

// TestClosedShard: a shard that closes under a client answers Unavailable
// to pulls, KV calls and pushes (after the retry policy's wait), and the
// caller's context ends a wait: on either transport.
func TestClosedShard(t *testing.T) {
	lc, err := StartLocal(context.Background(), 1, t.TempDir(), "")
	if err != nil {
		t.Fatal(err)
	}
	defer lc.Close()
	c := dial(t, lc.Addrs(), lc.Token(), WithRetry(RetryPolicy{Wait: -1}))
	ctx := testCtx(t)
	if err := c.CreateModel(ctx, ModelSpec{Name: "m", Dim: 10, LearningRate: 1}); err != nil {
		t.Fatal(err)
	}
	if err := c.PushSparse(ctx, "m", []uint64{1}, []float32{1}); err != nil {
		t.Fatal(err)
	}
	if err := c.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	cw := dial(t, lc.Addrs(), lc.Token(), WithRetry(RetryPolicy{Wait: time.Hour}))
	if err := lc.Servers()[0].Close(); err != nil {
		t.Fatal(err)
	}
	w := make([]float32, 1)
	err = c.PullSparse(ctx, "m", []uint64{1}, w)
	var se *ShardError
	if status.Code(err) != codes.Unavailable || !errors.As(err, &se) || !strings.Contains(err.Error(), "unreachable") {
		t.Fatalf("pull from a closed shard: %v, want Unavailable as a ShardError", err)
	}
	if err := c.Put(ctx, "k", []byte("v")); status.Code(err) != codes.Unavailable {
		t.Fatalf("put to a closed shard: %v", err)
	}
	if err := c.PushSparse(ctx, "m", []uint64{1}, []float32{1}); status.Code(err) != codes.Unavailable {
		t.Fatalf("push to a closed shard: %v", err)
	}
	// With a wait, the caller's context ends it.
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if err := cw.PullSparse(short, "m", []uint64{1}, w); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("pull waiting for a closed shard: %v, want the context's deadline", err)
	}
}

// TestCanceledContext: a call with an ended context fails with the
// context's error, wrapped with the shard.
func TestCanceledContext(t *testing.T) {
	_, c := startCluster(t, 2)
	ctx := testCtx(t)
	if err := c.CreateModel(ctx, ModelSpec{Name: "m", Dim: 10, LearningRate: 1}); err != nil {
		t.Fatal(err)
	}
	done, cancel := context.WithCancel(ctx)
	cancel()
	w := make([]float32, 2)
	for name, err := range map[string]error{
		"pull":  c.PullSparse(done, "m", []uint64{1, 2}, w),
		"get":   func() error { _, err := c.Get(done, "k"); return err }(),
		"dense": func() error { _, err := c.PullDense(done, "m"); return err }(),
		"stats": func() error { _, err := c.ModelStats(done, "m"); return err }(),
	} {
		var se *ShardError
		if !errors.Is(err, context.Canceled) || !errors.As(err, &se) {
			t.Errorf("%s with a canceled context: %v, want context.Canceled in a ShardError", name, err)
		}
	}
}

// TestStartLocalAsync: StartLocalAsync returns before its shards are open;
// a client that dials them at once waits for them, and a start that fails
// (here: the data directory is held by another shard) is the error of the
// dial, of Wait and of Close.
func TestStartLocalAsync(t *testing.T) {
	dir := t.TempDir()
	lc, err := StartLocalAsync(context.Background(), 2, dir, "")
	if err != nil {
		t.Fatal(err)
	}
	c := dial(t, lc.Addrs(), lc.Token(), WithReplicas(1))
	if c.InProcess() != wantInProcess() {
		t.Fatalf("InProcess() = %v", c.InProcess())
	}
	ctx := testCtx(t)
	if err := c.Put(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	// The same data directory while lc holds it.
	bad, err := StartLocalAsync(context.Background(), 2, dir, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Dial(ctx, bad.Addrs(), WithToken(bad.Token()), WithRetry(RetryPolicy{Wait: -1})); err == nil || (wantInProcess() && !strings.Contains(err.Error(), "failed to start")) {
		t.Fatalf("Dial of shards that failed to start: %v", err)
	}
	if err := bad.Wait(); err == nil || !strings.Contains(err.Error(), "another shard") {
		t.Fatalf("Wait: %v, want the data directory's error", err)
	}
	if err := bad.Close(); err == nil {
		t.Fatal("Close of a cluster that failed to start reports no error")
	}
	c.Close()
	if err := lc.Close(); err != nil {
		t.Fatal(err)
	}
}
