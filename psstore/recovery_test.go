package psstore

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// The recovery tests run shards as real child processes (this test binary
// re-executed with PSSTORE_TEST_CHILD_DIR set) and kill them with SIGKILL.

func TestMain(m *testing.M) {
	if dir := os.Getenv("PSSTORE_TEST_CHILD_DIR"); dir != "" {
		os.Exit(childShard(dir))
	}
	os.Exit(runTransports(m))
}

// childShard serves one shard until killed; it prints its address first.
func childShard(dir string) int {
	interval, err := time.ParseDuration(os.Getenv("PSSTORE_TEST_CHILD_CHECKPOINT"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "child: bad checkpoint interval:", err)
		return 2
	}
	addr := os.Getenv("PSSTORE_TEST_CHILD_ADDR")
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 2
	}
	perShard := 0
	if v := os.Getenv("PSSTORE_TEST_CHILD_PARTITIONS_PER_SHARD"); v != "" {
		if perShard, err = strconv.Atoi(v); err != nil {
			fmt.Fprintln(os.Stderr, "child: bad partitions per shard:", err)
			return 2
		}
	}
	s, err := NewServer(ServerOptions{DataDir: dir, Token: os.Getenv("PSSTORE_TEST_CHILD_TOKEN"), CheckpointInterval: interval, PartitionsPerShard: perShard})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 2
	}
	fmt.Printf("ADDR %s\n", lis.Addr())
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	if err := s.ServeContext(ctx, lis); err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	return 0
}

type childProc struct {
	cmd  *exec.Cmd
	addr string
}

func startChild(t testing.TB, dir, token string, checkpoint time.Duration) *childProc {
	t.Helper()
	return startChildAt(t, "127.0.0.1:0", dir, token, checkpoint)
}

// startChildParts is startChild for a shard that asks a new cluster for
// perShard partitions per shard (ServerOptions.PartitionsPerShard).
func startChildParts(t testing.TB, dir, token string, perShard int) *childProc {
	t.Helper()
	return startChildAt(t, "127.0.0.1:0", dir, token, time.Hour, "PSSTORE_TEST_CHILD_PARTITIONS_PER_SHARD="+strconv.Itoa(perShard))
}

func startChildAt(t testing.TB, addr, dir, token string, checkpoint time.Duration, env ...string) *childProc {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(),
		"PSSTORE_TEST_CHILD_ADDR="+addr,
		"PSSTORE_TEST_CHILD_DIR="+dir,
		"PSSTORE_TEST_CHILD_TOKEN="+token,
		"PSSTORE_TEST_CHILD_CHECKPOINT="+checkpoint.String())
	cmd.Env = append(cmd.Env, env...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &childProc{cmd: cmd}
	t.Cleanup(func() { p.kill() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "ADDR ") {
		t.Fatalf("child shard did not start: %q %v", line, err)
	}
	p.addr = strings.TrimSpace(strings.TrimPrefix(line, "ADDR "))
	return p
}

func (p *childProc) kill() {
	if p.cmd.ProcessState != nil {
		return
	}
	p.cmd.Process.Signal(syscall.SIGKILL)
	p.cmd.Wait()
}

// TestKillRecovery kills two shard processes in the middle of a stream of KV
// writes and pushes, restarts them on the same directories, and checks that
// every acknowledged write survived and each model is exactly a checkpoint:
// "quiet" (unchanged since its last periodic checkpoint) comes back equal
// to what was read before the kill; "busy" (pushed to continuously) comes
// back with weights that match its checkpointed counters.
func TestKillRecovery(t *testing.T) {
	grpcOnly(t) // shards in other processes, or the network itself
	const token = "kill-test"
	dirs := []string{t.TempDir(), t.TempDir()}
	var procs []*childProc
	start := func() []string {
		procs = nil
		var addrs []string
		for _, d := range dirs {
			p := startChild(t, d, token, 50*time.Millisecond)
			procs = append(procs, p)
			addrs = append(addrs, p.addr)
		}
		return addrs
	}
	addrs := start()
	ctx := testCtx(t)
	c := dial(t, addrs, token, WithReplicas(1)) // one copy: replication has TestReplicaFailover

	quiet := ModelSpec{Name: "quiet", Dim: 5000, Optimizer: "adagrad", LearningRate: 0.1, L2: 0.001, Init: "normal", Seed: 1}
	busy := ModelSpec{Name: "busy", Dim: 10, LearningRate: 1}
	for _, s := range []ModelSpec{quiet, busy} {
		if err := c.CreateModel(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	keys := make([]uint64, 500)
	grads := make([]float32, 500)
	for i := range keys {
		keys[i] = uint64(i * 7 % 5000)
		grads[i] = float32(i%13) - 6
	}
	for range 20 {
		if err := c.PushSparse(ctx, "quiet", keys, grads); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	waitCheckpointed(t, c, "quiet")
	want, err := c.PullDense(ctx, "quiet")
	if err != nil {
		t.Fatal(err)
	}

	var acked atomic.Int64
	acked.Store(-1)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // KV writer: sequential puts, remembering the last acknowledged one
		defer wg.Done()
		for i := 0; ; i++ {
			if err := c.Put(ctx, fmt.Sprintf("w/%06d", i), []byte(fmt.Sprintf("value-%d", i))); err != nil {
				return
			}
			acked.Store(int64(i))
		}
	}()
	go func() { // pusher: key 0 (shard 0) with gradient 1, never flushed
		defer wg.Done()
		for {
			if err := c.PushSparse(ctx, "busy", []uint64{0}, []float32{1}); err != nil {
				return
			}
		}
	}()
	for acked.Load() < 100 {
		time.Sleep(5 * time.Millisecond)
	}
	// Let the periodic checkpointer catch "busy" mid-stream at least once, and
	// kill when it holds updates newer than its checkpoint (under load the
	// pusher can stall on its window while a checkpoint catches up).
	for deadline := time.Now().Add(30 * time.Second); ; {
		st, err := c.ModelStats(ctx, "busy")
		if err != nil {
			t.Fatal(err)
		}
		if st.CheckpointUpdates > 0 && st.Shards[0].Updates > st.Shards[0].CheckpointUpdates {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no periodic checkpoint of \"busy\" within 30 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, p := range procs {
		p.kill()
	}
	wg.Wait()
	lastAcked := acked.Load()
	c.Close()

	addrs = start()
	c = dial(t, addrs, token, WithReplicas(1))
	for i := int64(0); i <= lastAcked; i++ {
		k := fmt.Sprintf("w/%06d", i)
		v, err := c.Get(ctx, k)
		if err != nil || string(v) != fmt.Sprintf("value-%d", i) {
			t.Fatalf("acknowledged write %s lost: %q %v", k, v, err)
		}
	}
	got, err := c.PullDense(ctx, "quiet")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Fatal("model \"quiet\" differs from its last checkpoint")
	}
	// "busy" had pushes newer than its last checkpoint when it was killed:
	// it comes back from that checkpoint, says so, and refuses to serve
	// weights that no longer match the other shard's.
	st, err := c.ModelStats(ctx, "busy")
	if err != nil {
		t.Fatal(err)
	}
	if st.Lost == "" || st.Shards[0].Lost == "" || st.Shards[0].Updates != st.Shards[0].CheckpointUpdates {
		t.Fatalf("model \"busy\" came back without saying it lost updates: %+v", st)
	}
	w := make([]float32, 1)
	if err := c.PullSparse(ctx, "busy", []uint64{0}, w); !errors.Is(err, ErrModelLost) || status.Code(err) != codes.DataLoss {
		t.Fatalf("pull of a model that lost updates: %v, want ErrModelLost", err)
	}
	if _, err := c.PullDense(ctx, "busy"); !errors.Is(err, ErrModelLost) {
		t.Fatalf("dense pull of a model that lost updates: %v, want ErrModelLost", err)
	}
	if st, err := c.ModelStats(ctx, "quiet"); err != nil || st.Lost != "" {
		t.Fatalf("model \"quiet\" (no updates since its checkpoint) reported as lost: %v %+v", err, st)
	}
	t.Logf("%d acknowledged writes survived; \"busy\" came back from checkpoint %d and says: %s", lastAcked+1, st.Checkpoints, st.Lost)
}

// waitCheckpointed waits until every shard's last checkpoint covers all of
// the model's updates.
func waitCheckpointed(t *testing.T, c *Client, model string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := c.ModelStats(context.Background(), model)
		if err != nil {
			t.Fatal(err)
		}
		if st.CheckpointUpdates == st.Updates {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("model %s not checkpointed within 30 s: %+v", model, st)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestSnapshotSurvivesKill: with periodic checkpoints off, a killed shard
// comes back with exactly its last Snapshot (TestKillLosesUnsavedPushes:
// and with an error if anything was pushed after it).
func TestSnapshotSurvivesKill(t *testing.T) {
	grpcOnly(t) // shards in other processes, or the network itself
	const token = "t"
	dir := t.TempDir()
	p := startChild(t, dir, token, -1)
	ctx := testCtx(t)
	c := dial(t, []string{p.addr}, token)
	if err := c.CreateModel(ctx, ModelSpec{Name: "m", Dim: 3 << 20, Optimizer: "momentum", LearningRate: 0.5}); err != nil {
		t.Fatal(err)
	}
	keys := []uint64{0, 1 << 20, 3<<20 - 1}
	if err := c.PushSparse(ctx, "m", keys, []float32{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	if err := c.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Snapshot(ctx, "m"); err != nil {
		t.Fatal(err)
	}
	want, _ := c.PullDense(ctx, "m")
	p.kill()
	c.Close()
	p = startChild(t, dir, token, -1)
	c = dial(t, []string{p.addr}, token)
	got, err := c.PullDense(ctx, "m")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("model after kill differs from its snapshot: w[0] %v vs %v", got[0], want[0])
	}
	// Momentum state came back too: one more push moves it as the
	// reference does (v = 0.9*v + g with v from the snapshot).
	st, _ := c.ModelStats(ctx, "m")
	if st.Pushes != 1 || st.Updates != 3 {
		t.Fatalf("counters after restore: %+v", st)
	}
	if err := c.PushSparse(ctx, "m", keys[:1], []float32{0}); err != nil {
		t.Fatal(err)
	}
	if err := c.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	w := make([]float32, 1)
	c.PullSparse(ctx, "m", keys[:1], w)
	// after the snapshot: v=1, w=-0.5; now g=0: v=0.9, w=-0.5-0.45
	if !closeTo(w[0], -0.95) {
		t.Fatalf("w[0] = %v, want -0.95 (momentum state restored)", w[0])
	}
}

// TestClientSurvivesShardRestart: a client keeps working, without a new
// Dial, when a shard process is killed and restarted on the same address
// and directory. Its pooled pull streams died with the connection; the
// first pull retries on a fresh one. Pushes in flight at the kill are
// reported, later ones work.
func TestClientSurvivesShardRestart(t *testing.T) {
	grpcOnly(t) // shards in other processes, or the network itself
	const token = "t"
	dir := t.TempDir()
	p := startChild(t, dir, token, -1)
	ctx := testCtx(t)
	c := dial(t, []string{p.addr}, token)
	if err := c.CreateModel(ctx, ModelSpec{Name: "m", Dim: 100, LearningRate: 1}); err != nil {
		t.Fatal(err)
	}
	dst := make([]float32, 3)
	keys := []uint64{1, 2, 3}
	// Several concurrent pulls leave several idle streams in the pool.
	done := make(chan error, 4)
	for range 4 {
		go func() { done <- c.PullSparse(ctx, "m", keys, make([]float32, 3)) }()
	}
	for range 4 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if err := c.PushSparse(ctx, "m", keys, []float32{1, 1, 1}); err != nil {
		t.Fatal(err)
	}
	if err := c.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Snapshot(ctx, "m"); err != nil {
		t.Fatal(err)
	}
	p.kill()
	_ = startChildAt(t, p.addr, dir, token, -1)
	if err := c.PullSparse(ctx, "m", keys, dst); err != nil {
		t.Fatalf("pull after the shard restarted: %v", err)
	}
	if dst[0] != -1 {
		t.Fatalf("w[1] = %v after restart, want -1", dst[0])
	}
	for range 3 {
		if err := c.PushSparse(ctx, "m", keys, []float32{1, 1, 1}); err != nil {
			t.Fatalf("push after the shard restarted: %v", err)
		}
	}
	if err := c.Flush(ctx); err != nil {
		t.Fatalf("flush after the shard restarted: %v", err)
	}
	if err := c.PullSparse(ctx, "m", keys, dst); err != nil || dst[2] != -4 {
		t.Fatalf("after restart and 3 pushes: %v %v", dst, err)
	}
	if err := c.Put(ctx, "k", []byte("v")); err != nil {
		t.Fatalf("put after restart: %v", err)
	}
}

// TestKillLosesUnsavedPushes: a shard killed with pushes newer than its
// last checkpoint comes back saying its slice lost updates — pulls, dense
// pulls and pushes fail with ErrModelLost, stats still answer — until the
// model is deleted; created again, it has a new incarnation. A shard that
// is stopped cleanly after pushes loses nothing.
func TestKillLosesUnsavedPushes(t *testing.T) {
	grpcOnly(t) // shards in other processes, or the network itself
	const token = "t"
	dir := t.TempDir()
	p := startChild(t, dir, token, -1)
	ctx := testCtx(t)
	c := dial(t, []string{p.addr}, token)
	spec := ModelSpec{Name: "m", Dim: 100, LearningRate: 1}
	if err := c.CreateModel(ctx, spec); err != nil {
		t.Fatal(err)
	}
	before, err := c.ModelStats(ctx, "m")
	if err != nil {
		t.Fatal(err)
	}
	keys := []uint64{1, 2, 3}
	for range 5 {
		if err := c.PushSparse(ctx, "m", keys, []float32{1, 1, 1}); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	p.kill()
	p = startChildAt(t, p.addr, dir, token, -1)
	st, err := c.ModelStats(ctx, "m")
	if err != nil {
		t.Fatalf("stats after the restart: %v", err)
	}
	if st.Lost == "" || st.Updates != 0 || st.Shards[0].Incarnation != before.Shards[0].Incarnation {
		t.Fatalf("after kill -9 with 5 unsaved pushes: %+v, want Lost set, 0 updates, incarnation %d", st, before.Shards[0].Incarnation)
	}
	dst := make([]float32, 3)
	err = c.PullSparse(ctx, "m", keys, dst)
	if !errors.Is(err, ErrModelLost) {
		t.Fatalf("pull: %v, want ErrModelLost", err)
	}
	if !strings.Contains(err.Error(), p.addr) || !strings.Contains(err.Error(), "train it again") {
		t.Fatalf("error does not name the shard and what to do: %v", err)
	}
	if err := c.PushSparse(ctx, "m", keys, []float32{1, 1, 1}); err == nil {
		err = c.Flush(ctx)
		if !errors.Is(err, ErrModelLost) {
			t.Fatalf("push: %v, want ErrModelLost", err)
		}
	}
	if err := c.DeleteModel(ctx, "m"); err != nil {
		t.Fatal(err)
	}
	if err := c.CreateModel(ctx, spec); err != nil {
		t.Fatal(err)
	}
	st, err = c.ModelStats(ctx, "m")
	if err != nil || st.Lost != "" || st.Shards[0].Incarnation == before.Shards[0].Incarnation {
		t.Fatalf("model created again: %v %+v, want a new incarnation and nothing lost", err, st)
	}
	for range 3 {
		if err := c.PushSparse(ctx, "m", keys, []float32{1, 1, 1}); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	// A clean stop (SIGTERM runs Close, which checkpoints) loses nothing.
	p.cmd.Process.Signal(syscall.SIGTERM)
	p.cmd.Wait()
	_ = startChildAt(t, p.addr, dir, token, -1) // stopped by its cleanup
	if err := c.PullSparse(ctx, "m", keys, dst); err != nil || dst[0] != -3 {
		t.Fatalf("after a clean restart: %v %v, want w = -3", dst, err)
	}
}

// TestRetryWaitsForShard: an operation on a shard that is down waits (with
// backoff) for it to come back instead of failing at once, whether the
// operation is a KV write, a model call, a pull or a new push stream; with
// a short wait it gives up with an error naming the address and the wait.
func TestRetryWaitsForShard(t *testing.T) {
	grpcOnly(t) // shards in other processes, or the network itself
	const token = "t"
	dir := t.TempDir()
	p := startChild(t, dir, token, -1)
	ctx := testCtx(t)
	c := dial(t, []string{p.addr}, token)
	impatient := dial(t, []string{p.addr}, token, WithRetry(RetryPolicy{Wait: 100 * time.Millisecond}))
	if err := c.CreateModel(ctx, ModelSpec{Name: "m", Dim: 10, LearningRate: 1}); err != nil {
		t.Fatal(err)
	}
	p.kill()

	err := impatient.Put(ctx, "k", []byte("v"))
	if err == nil || !strings.Contains(err.Error(), "waited") || !strings.Contains(err.Error(), p.addr) || status.Code(err) != codes.Unavailable {
		t.Fatalf("put with a 100 ms wait on a dead shard: %v, want unreachable after waiting, naming %s", err, p.addr)
	}

	ops := map[string]func() error{
		"put":   func() error { return c.Put(ctx, "k", []byte("v")) },
		"stats": func() error { _, err := c.ModelStats(ctx, "m"); return err },
		"pull":  func() error { return c.PullSparse(ctx, "m", []uint64{1}, make([]float32, 1)) },
		"push": func() error {
			if err := c.PushSparse(ctx, "m", []uint64{1}, []float32{1}); err != nil {
				return err
			}
			return c.Flush(ctx)
		},
	}
	errs := make(chan error, len(ops))
	for name, op := range ops {
		go func() {
			if err := op(); err != nil {
				errs <- fmt.Errorf("%s: %w", name, err)
				return
			}
			errs <- nil
		}()
	}
	// Restart the shard only once the client has retried for it.
	for c.retries.Load() < uint64(len(ops)) {
		time.Sleep(5 * time.Millisecond)
	}
	_ = startChildAt(t, p.addr, dir, token, -1) // stopped by its cleanup
	for range ops {
		if err := <-errs; err != nil {
			t.Errorf("operation during the shard's restart: %v", err)
		}
	}
}
