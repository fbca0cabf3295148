package train_test

import (
	"context"
	"math"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/stratus-ml/stratus/executor"
	"github.com/stratus-ml/stratus/executor/runtime/runtimetest"
	"github.com/stratus-ml/stratus/operators/train"
	"github.com/stratus-ml/stratus/psstore"
)

// TestTrainDuringJoinAndDrain changes the psstore cluster under a running
// training: once the workers have handed over (the run is well under
// way), a third shard process joins and the first is drained out and then
// killed, key ranges moving while the workers pull and push. The apply
// succeeds with the metrics of an undisturbed run on the same cluster
// (within 1 %), and leaves nothing behind in psstore. With 2 partitions
// per shard (serve's default) the join itself moves partitions onto the
// new shard, with one copy as with two; with one per shard and one copy
// only the drain moves.
func TestTrainDuringJoinAndDrain(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a9a twice")
	}
	for _, tc := range []struct{ replicas, perShard string }{{"1", "2"}, {"2", "1"}, {"2", "2"}} {
		t.Run("replicas="+tc.replicas+",partitions-per-shard="+tc.perShard, func(t *testing.T) {
			t.Setenv(psstore.ReplicasEnv, tc.replicas)
			t.Setenv("STRATUS_TEST_SHARD_PARTITIONS_PER_SHARD", tc.perShard) // read by the shard processes
			trainDuringJoinAndDrain(t)
		})
	}
}

func trainDuringJoinAndDrain(t *testing.T) {
	const token = "elastic-test"
	a := startShard(t, "127.0.0.1:0", t.TempDir(), token)
	b := startShard(t, "127.0.0.1:0", t.TempDir(), token)
	addrs := []string{a.addr, b.addr}
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
	ref := runtimetestHarness(t, src, addrs, token)
	sum, _ := ref.MustApply()
	want := metric(t, sum, "test_logloss")
	t.Logf("undisturbed: test logloss %.4f", want)

	h := runtimetestHarness(t, src, addrs, token)
	obs := &relaunchObserver{ch: make(chan struct{})}
	h.Observer = obs
	type applied struct {
		sum *executor.Summary
		err error
	}
	done := make(chan applied, 1)
	go func() {
		sum, _, err := h.Apply()
		done <- applied{sum, err}
	}()
	select {
	case <-obs.ch:
	case a := <-done:
		t.Fatalf("the apply ended (%v) before any worker handed over", a.err)
	}
	ctx := context.Background()
	d := startShard(t, "127.0.0.1:0", t.TempDir(), token)
	joined, err := psstore.JoinCluster(ctx, a.addr, d.addr, nil, psstore.WithToken(token))
	if err != nil {
		t.Fatal(err)
	}
	// The new shard's share of the copies moved in while the workers ran.
	if got, want := len(joined.Hosted(d.addr)), joined.Partitions*joined.Replicas/3; got != want {
		t.Fatalf("the joined shard holds %d partitions, want %d: %+v", got, want, joined)
	}
	final, err := psstore.DrainMember(ctx, b.addr, a.addr, nil, psstore.WithToken(token))
	if err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-done:
		t.Fatalf("the training ended (%v) before the cluster changes did: make it longer", r.err)
	default:
	}
	a.kill() // drained: its key ranges are elsewhere
	t.Logf("%d partitions: joined at map version %d (%d partitions moved in), drained at %d: members %v", joined.Partitions, joined.Version, len(joined.Hosted(d.addr)), final.Version, final.Addrs())
	r := <-done
	if r.err != nil {
		t.Fatalf("the apply failed while the cluster changed: %v\n%s", r.err, stageError(r.sum, "train.lr"))
	}
	got := metric(t, r.sum, "test_logloss")
	t.Logf("with a join and a drain: test logloss %.4f", got)
	if math.Abs(got-want) > 0.01*want {
		t.Fatalf("test logloss %.4f with a join and a drain during training; undisturbed %.4f", got, want)
	}

	c, err := psstore.Dial(ctx, []string{d.addr}, psstore.WithToken(token)) // a seed
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	models, err := c.ListModels(ctx, "train/")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range models {
		t.Errorf("model %s left in psstore after its stage exported it", m.Name)
	}
}

func runtimetestHarness(t *testing.T, src string, addrs []string, token string) *runtimetest.Harness {
	h := runtimetest.New(t, src)
	h.Env.PSStore, h.Env.Token = addrs, token
	h.Retries = 20 // a 300 ms lifetime is tight on a loaded machine
	return h
}

// waveObserver signals once a task of the named wave of train.lr starts.
type waveObserver struct {
	wave string
	once sync.Once
	ch   chan struct{}
}

func (o *waveObserver) Event(e executor.Event) {
	if e.Type == executor.TaskStarted && e.Stage == "train.lr" && e.Wave == o.wave {
		o.once.Do(func() { close(o.ch) })
	}
}

// TestElasticResume interrupts an elastic training (workers = "auto") once it
// has changed its worker count and started the next segment, with the shards
// staying up: the next apply resumes the model and the same segments — the
// first is done, the second runs the count the interrupted run chose — and
// ends with the metrics of one fixed worker within 1 %.
func TestElasticResume(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a9a three times")
	}
	const token = "elastic-resume"
	addrs := []string{startShard(t, "127.0.0.1:0", t.TempDir(), token).addr, startShard(t, "127.0.0.1:0", t.TempDir(), token).addr}
	args := `
  solver        = "sgd"
  minibatch     = 100
  optimizer     = "adagrad"
  learning_rate = 0.05
  l2            = 0.0001
  epochs        = 10
  eval_interval = "50ms"
`
	sum, _ := runtimetestHarness(t, a9aPipeline(args+"  workers = 1\n"), addrs, token).MustApply()
	want := metric(t, sum, "test_logloss")

	h := runtimetestHarness(t, a9aPipeline(args), addrs, token)
	// Room for more than one worker on any machine (the local backend allows
	// one per core but one).
	h.Wrap = func(b executor.Backend) executor.Backend { return claimedCores{b, 4} }
	obs := &waveObserver{wave: "workers.1", ch: make(chan struct{})}
	h.Observer = obs
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, _, err := h.ApplyPlanContext(ctx, h.MustPlan())
		done <- err
	}()
	select {
	case <-obs.ch:
		cancel()
	case err := <-done:
		t.Fatalf("the apply ended (%v) before the worker count changed", err)
	}
	if err := <-done; err == nil {
		t.Skip("training finished before the interruption took effect")
	}

	h.Observer = nil
	sum, rec := h.MustApply()
	got := metric(t, sum, "test_logloss")
	notes := strings.Join(rec.Notes("train.lr"), "\n")
	started := map[string]int{}
	resumed := map[string]int{}
	for _, e := range rec.Events() {
		if e.Type == executor.WaveStarted && e.Stage == "train.lr" && strings.HasPrefix(e.Wave, "workers") {
			started[e.Wave], resumed[e.Wave] = e.Tasks, e.Resumed
		}
	}
	t.Logf("resumed apply: waves %v (already done %v), test logloss %.4f (one fixed worker %.4f)\n%s", started, resumed, got, want, notes)
	if strings.Contains(notes, "not resuming") {
		t.Fatalf("the intact model was not resumed:\n%s", notes)
	}
	if started["workers"] != 1 || resumed["workers"] != 1 {
		t.Errorf("the first segment: %d task(s), %d already done; want its one worker, done", started["workers"], resumed["workers"])
	}
	if started["workers.1"] != 2 {
		t.Errorf("the second segment ran %d workers; want the 2 the interrupted run chose", started["workers.1"])
	}
	if got > want*1.01 {
		t.Fatalf("resumed elastic training: test logloss %.4f, one fixed worker %.4f", got, want)
	}
}

// claimedCores is a backend that says its functions share n cores, whatever
// the process has.
type claimedCores struct {
	executor.Backend
	n int
}

func (b claimedCores) Cores() int { return b.n }

// TestElasticRevert: a scale-out that does not speed the workers up is
// undone. The backend claims 4 cores, room for 3 workers, while the process
// runs on one (GOMAXPROCS 1), so two CPU-bound workers (minibatch 10) cannot
// process examples faster than one (0.6–1.0× in 17 runs): the run doubles its one worker while the loss falls fast, measures
// the two, goes back to one with the reason in the progress output, and does
// not try two again. It ends with the metrics of one fixed worker within 1 %.
func TestElasticRevert(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a9a twice")
	}
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	args := `
  solver        = "sgd"
  minibatch     = 10
  optimizer     = "adagrad"
  learning_rate = 0.002
  l2            = 0.0001
  epochs        = 60
  eval_interval = "20ms"
`
	harness := func(src string) *runtimetest.Harness {
		h := runtimetest.New(t, src)
		h.Wrap = func(b executor.Backend) executor.Backend { return claimedCores{b, 4} }
		return h
	}
	sum, _ := harness(a9aPipeline(args + "  workers = 1\n")).MustApply()
	want := metric(t, sum, "test_logloss")

	sum, rec := harness(a9aPipeline(args)).MustApply()
	got := metric(t, sum, "test_logloss")
	var changes []string
	for _, e := range rec.Of(executor.StageEvent, "train.lr") {
		if e.Kind == train.KindWorkersEvent && e.Note != "" {
			changes = append(changes, e.Note)
		}
	}
	started := map[string]int{}
	for _, e := range rec.Events() {
		if e.Type == executor.WaveStarted && e.Stage == "train.lr" && strings.HasPrefix(e.Wave, "workers") {
			started[e.Wave] = e.Tasks
		}
	}
	t.Logf("changes %q, waves %v, test logloss %.4f (one fixed worker %.4f)\n%s", changes, started, got, want, strings.Join(rec.Notes("train.lr"), "\n"))
	if !strings.Contains(strings.Join(rec.Notes("train.lr"), "\n"), "1 workers (elastic: 1 to 3 by loss improvement per dollar)") {
		t.Fatalf("the run did not start elastic, 1 to 3:\n%s", strings.Join(rec.Notes("train.lr"), "\n"))
	}
	if len(changes) == 0 {
		// The loss fell under 2 %/epoch by the first judgement (it sometimes
		// does on a9a: most of the fall can come before the first
		// evaluation), so there was no scale-out to judge.
		t.Skip("the run did not scale out")
	}
	if len(changes) == 2 && strings.HasPrefix(changes[1], "workers 2 → 1: loss only ") {
		// The loss slowed under 0.5 %/epoch before the two workers had the
		// evaluations the revert judges by (a learning rate of 0.005 did
		// this in 1 of 5 runs on an idle machine; 0.002 in none of 8): the
		// scale-in rule, not the one under test, went back.
		t.Skip("the loss slowed before the scale-out could be judged")
	}
	if len(changes) != 2 || !strings.HasPrefix(changes[0], "workers 1 → 2: loss −") ||
		!regexp.MustCompile(`^workers 2 → 1: the scale-out did not pay: [0-9.kM]+ examples/s on 2 workers, [0-9.]+× the [0-9.kM]+ on 1, short of 1\.50× \(half of linear speed-up\); not trying 2 again$`).MatchString(changes[1]) {
		t.Fatalf("worker changes %q; want 1 → 2 on the loss, then 2 → 1 as it did not pay, and no more", changes)
	}
	if started["workers"] != 1 || started["workers.1"] != 2 || started["workers.2"] != 1 || len(started) != 3 {
		t.Errorf("worker segments %v; want 1, 2 and 1 task(s)", started)
	}
	for _, st := range sum.Stages {
		if st.Address == "train.lr" && st.Metrics["workers_changes"] != 2 {
			t.Errorf("workers_changes %v; want 2", st.Metrics["workers_changes"])
		}
	}
	if got > want*1.01 {
		t.Fatalf("elastic training with a reverted scale-out: test logloss %.4f, one fixed worker %.4f", got, want)
	}
}
