package train_test

import (
	"bufio"
	"context"
	"fmt"
	"math"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/stratus-ml/stratus/executor"
	"github.com/stratus-ml/stratus/executor/executortest"
	"github.com/stratus-ml/stratus/executor/runtime/runtimetest"
	"github.com/stratus-ml/stratus/psstore"
)

// The tests here run psstore shards as real processes (this test binary
// re-executed with STRATUS_TEST_SHARD_DIR set), so that one can be killed
// with SIGKILL mid-training, as an operator's kill -9 would.

func TestMain(m *testing.M) {
	if dir := os.Getenv("STRATUS_TEST_SHARD_DIR"); dir != "" {
		os.Exit(serveShard(dir))
	}
	os.Exit(m.Run())
}

// serveShard serves one shard on $STRATUS_TEST_SHARD_ADDR until SIGTERM
// (a clean stop) or SIGKILL; it prints its address first.
func serveShard(dir string) int {
	lis, err := net.Listen("tcp", os.Getenv("STRATUS_TEST_SHARD_ADDR"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "shard:", err)
		return 2
	}
	// $STRATUS_TEST_SHARD_PARTITIONS_PER_SHARD: as serve --partitions auto.
	perShard, _ := strconv.Atoi(os.Getenv("STRATUS_TEST_SHARD_PARTITIONS_PER_SHARD"))
	s, err := psstore.NewServer(psstore.ServerOptions{DataDir: dir, Token: os.Getenv("STRATUS_TEST_SHARD_TOKEN"), PartitionsPerShard: perShard, Logf: func(string, ...any) {}})
	if err != nil {
		fmt.Fprintln(os.Stderr, "shard:", err)
		return 2
	}
	fmt.Printf("ADDR %s\n", lis.Addr())
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	if err := s.ServeContext(ctx, lis); err != nil {
		fmt.Fprintln(os.Stderr, "shard:", err)
		return 1
	}
	return 0
}

type shardProc struct {
	cmd  *exec.Cmd
	addr string
}

func startShard(t *testing.T, addr, dir, token string) *shardProc {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "STRATUS_TEST_SHARD_DIR="+dir, "STRATUS_TEST_SHARD_ADDR="+addr, "STRATUS_TEST_SHARD_TOKEN="+token)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &shardProc{cmd: cmd}
	t.Cleanup(p.kill)
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "ADDR ") {
		t.Fatalf("shard did not start: %q %v", line, err)
	}
	p.addr = strings.TrimSpace(strings.TrimPrefix(line, "ADDR "))
	return p
}

func (p *shardProc) kill() {
	if p.cmd.ProcessState != nil {
		return
	}
	p.cmd.Process.Signal(syscall.SIGKILL)
	p.cmd.Wait()
}

// relaunchObserver signals once a train worker has yielded at its lifetime,
// so its position is in the state and a later apply would resume it.
type relaunchObserver struct {
	once sync.Once
	ch   chan struct{}
}

func (o *relaunchObserver) Event(e executor.Event) {
	if e.Type == executor.TaskRelaunch && e.Stage == "train.lr" && strings.HasPrefix(e.Wave, "workers") {
		o.once.Do(func() { close(o.ch) })
	}
}

// TestTrainShardKilled is the kill -9 scenario: two shard processes, one
// killed in the middle of training (after the workers have handed over at
// least once, so an interrupted run would resume them) and restarted at
// once on its data directory, before any periodic checkpoint.
//
// With each key range on both shards (replication, the default), training
// fails over to the surviving copies: the apply succeeds with the metrics of
// an undisturbed run (within 1 %). Without replication the apply fails
// saying the model lost updates, and the next apply trains again from the
// start (it does not count the recorded workers as done) and reaches the
// undisturbed metrics. Never success with a worse model. Once exported, the
// models are gone from psstore; the undisturbed run, another pipeline with
// the same configuration on the same cluster, kept its own model.
func TestTrainShardKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a9a several times")
	}
	for _, replicas := range []string{"1", "2"} {
		t.Run("replicas="+replicas, func(t *testing.T) {
			t.Setenv(psstore.ReplicasEnv, replicas)
			trainShardKilled(t, replicas == "2")
		})
	}
}

func trainShardKilled(t *testing.T, replicated bool) {
	const token = "kill-test"
	dirs := []string{t.TempDir(), t.TempDir()}
	shards := []*shardProc{startShard(t, "127.0.0.1:0", dirs[0], token), startShard(t, "127.0.0.1:0", dirs[1], token)}
	addrs := []string{shards[0].addr, shards[1].addr}
	src := a9aPipeline(`
  workers       = 2
  minibatch     = 100
  optimizer     = "adagrad"
  learning_rate = 0.1
  l2            = 0.0001
  epochs        = 20
  eval_interval = "100ms"
  lifetime      = "300ms"
`)
	harness := func() *runtimetest.Harness {
		h := runtimetest.New(t, src)
		h.Env.PSStore, h.Env.Token = addrs, token
		h.Retries = 20 // a 300 ms lifetime is tight on a loaded machine
		return h
	}

	ref := harness()
	sum, _ := ref.MustApply()
	want := metric(t, sum, "test_logloss")
	t.Logf("undisturbed: test logloss %.4f", want)

	h := harness()
	obs := &relaunchObserver{ch: make(chan struct{})}
	h.Observer = obs
	type applied struct {
		sum *executor.Summary
		rec *executortest.Recorder
		err error
	}
	done := make(chan applied, 1)
	go func() {
		sum, rec, err := h.Apply()
		done <- applied{sum, rec, err}
	}()
	select {
	case <-obs.ch:
	case a := <-done:
		t.Fatalf("the apply ended (%v) before any worker handed over", a.err)
	}
	shards[1].kill()
	shards[1] = startShard(t, addrs[1], dirs[1], token)
	a := <-done
	if replicated && a.err != nil {
		t.Fatalf("with replication, the apply failed when a shard was killed: %v\n%s", a.err, stageError(a.sum, "train.lr"))
	}
	if a.err == nil {
		got := metric(t, a.sum, "test_logloss")
		t.Logf("apply survived the kill: test logloss %.4f", got)
		if math.Abs(got-want) > 0.01*want {
			t.Fatalf("the apply succeeded with test logloss %.4f after a shard was killed; undisturbed %.4f", got, want)
		}
	} else {
		stageErr := stageError(a.sum, "train.lr")
		t.Logf("apply failed as it should: %s", stageErr)
		if !strings.Contains(stageErr, "lost updates") || !strings.Contains(stageErr, "stratus apply") {
			t.Fatalf("the train stage failed without saying the model lost updates and what to do: %q", stageErr)
		}
		sum, rec := h.MustApply()
		got := metric(t, sum, "test_logloss")
		notes := strings.Join(rec.Notes("train.lr"), "\n")
		t.Logf("next apply: test logloss %.4f; notes:\n%s", got, notes)
		if math.Abs(got-want) > 0.01*want {
			t.Fatalf("the apply after the failure: test logloss %.4f, undisturbed %.4f", got, want)
		}
		if !strings.Contains(notes, "not resuming") {
			t.Errorf("the next apply did not say it trained again from the start:\n%s", notes)
		}
	}

	c, err := psstore.Dial(context.Background(), addrs, psstore.WithToken(token))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	models, err := c.ListModels(context.Background(), "train/")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range models {
		t.Errorf("model %s left in psstore after its stage exported it", m.Name)
	}
	if keys, err := c.List(context.Background(), "ctl/"); err != nil || len(keys) > 0 {
		t.Errorf("control keys left in psstore: %v %v", keys, err)
	}
}

func stageError(sum *executor.Summary, addr string) string {
	if sum == nil {
		return ""
	}
	for _, s := range sum.Stages {
		if s.Address == addr {
			return s.Error
		}
	}
	return ""
}

// TestTrainResumesIntactModel interrupts an apply in the middle of training
// while the shards stay up: the next apply finds the model it recorded,
// intact, and resumes it (the workers' recorded hand-overs count), rather
// than training again; the result matches an undisturbed run.
func TestTrainResumesIntactModel(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a9a twice")
	}
	const token = "resume-test"
	dirs := []string{t.TempDir(), t.TempDir()}
	addrs := []string{startShard(t, "127.0.0.1:0", dirs[0], token).addr, startShard(t, "127.0.0.1:0", dirs[1], token).addr}
	src := a9aPipeline(`
  workers       = 2
  minibatch     = 100
  optimizer     = "adagrad"
  learning_rate = 0.1
  l2            = 0.0001
  epochs        = 20
  eval_interval = "100ms"
  lifetime      = "300ms"
`)
	harness := func() *runtimetest.Harness {
		h := runtimetest.New(t, src)
		h.Env.PSStore, h.Env.Token = addrs, token
		h.Retries = 20
		return h
	}
	ref := harness()
	sum, _ := ref.MustApply()
	want := metric(t, sum, "test_logloss")

	h := harness()
	obs := &relaunchObserver{ch: make(chan struct{})}
	h.Observer = obs
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, _, err := h.ApplyPlanContext(ctx, h.MustPlan())
		done <- err
	}()
	select {
	case <-obs.ch:
		cancel()
	case err := <-done:
		cancel()
		t.Fatalf("the apply ended (%v) before any worker handed over", err)
	}
	if err := <-done; err == nil {
		t.Skip("training finished before the interruption took effect")
	}

	h.Observer = nil
	sum, rec := h.MustApply()
	got := metric(t, sum, "test_logloss")
	notes := strings.Join(rec.Notes("train.lr"), "\n")
	// A worker that handed over before the interruption starts again as its
	// next generation, from where it was, in the same wave.
	resumed, fresh := 0, 0
	first := map[int]bool{}
	for _, e := range rec.Events() {
		if e.Type != executor.TaskStarted || e.Stage != "train.lr" || !strings.HasPrefix(e.Wave, "workers") {
			continue
		}
		if e.Wave != "workers" {
			fresh++
		} else if !first[e.Index] {
			first[e.Index] = true
			if e.Generation > 0 {
				resumed++
			}
		}
	}
	t.Logf("resumed apply: %d workers resumed from a hand-over, test logloss %.4f (undisturbed %.4f)", resumed, got, want)
	if strings.Contains(notes, "not resuming") || resumed == 0 || fresh > 0 {
		t.Fatalf("the intact model was not resumed (%d resumed launches, %d in a new generation of waves); notes:\n%s", resumed, fresh, notes)
	}
	if math.Abs(got-want) > 0.01*want {
		t.Fatalf("resumed training: test logloss %.4f, undisturbed %.4f", got, want)
	}
}
