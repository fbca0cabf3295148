package psstore

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// The recovery tests run shards as real child processes (this test binary
// re-executed with PSSTORE_TEST_CHILD_DIR set) and kill them with SIGKILL.

func TestMain(m *testing.M) {
	if dir := os.Getenv("PSSTORE_TEST_CHILD_DIR"); dir != "" {
		os.Exit(childShard(dir))
	}
	os.Exit(m.Run())
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
	s, err := NewServer(ServerOptions{DataDir: dir, Token: os.Getenv("PSSTORE_TEST_CHILD_TOKEN"), CheckpointInterval: interval})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 2
	}
	fmt.Printf("ADDR %s\n", lis.Addr())
	if err := s.Serve(lis); err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	return 0
}

type childProc struct {
	cmd  *exec.Cmd
	addr string
}

func startChild(t *testing.T, dir, token string, checkpoint time.Duration) *childProc {
	t.Helper()
	return startChildAt(t, "127.0.0.1:0", dir, token, checkpoint)
}

func startChildAt(t *testing.T, addr, dir, token string, checkpoint time.Duration) *childProc {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(),
		"PSSTORE_TEST_CHILD_ADDR="+addr,
		"PSSTORE_TEST_CHILD_DIR="+dir,
		"PSSTORE_TEST_CHILD_TOKEN="+token,
		"PSSTORE_TEST_CHILD_CHECKPOINT="+checkpoint.String())
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
	c := dial(t, addrs, token)

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
	// Let the periodic checkpointer catch "busy" mid-stream at least once.
	for deadline := time.Now().Add(30 * time.Second); ; {
		st, err := c.ModelStats(ctx, "busy")
		if err != nil {
			t.Fatal(err)
		}
		if st.CheckpointUpdates > 0 {
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
	c = dial(t, addrs, token)
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
	st, err := c.ModelStats(ctx, "busy")
	if err != nil {
		t.Fatal(err)
	}
	w := make([]float32, 1)
	if err := c.PullSparse(ctx, "busy", []uint64{0}, w); err != nil {
		t.Fatal(err)
	}
	if st.Pushes == 0 || w[0] != -float32(st.Pushes) || st.Updates != st.CheckpointUpdates {
		t.Fatalf("model \"busy\" is not a consistent checkpoint: w[0] = %v after %d pushes (%+v)", w[0], st.Pushes, st)
	}
	t.Logf("%d acknowledged writes survived; \"busy\" came back with %d pushes from checkpoint %d", lastAcked+1, st.Pushes, st.Checkpoints)
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
// comes back with exactly its last Snapshot, whatever was pushed after it.
func TestSnapshotSurvivesKill(t *testing.T) {
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
	for range 50 {
		if err := c.PushSparse(ctx, "m", keys, []float32{5, 5, 5}); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	p.kill()
	// The client notices: a push now fails or reports the broken stream.
	if err := c.PushSparse(ctx, "m", keys, []float32{1, 1, 1}); err == nil {
		if err := c.Flush(ctx); err == nil {
			t.Fatal("push to a killed shard reported no error")
		}
	}
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
