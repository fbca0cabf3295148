package psstore

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"
)

// grpcServer starts one shard of this process reached over gRPC only (it
// is not registered for the in-process transport, so the map gate applies
// as to `stratus psstore serve`), for tests that reach into the server.
func grpcServer(t *testing.T, token string, opts ...func(*ServerOptions)) (*Server, string) {
	t.Helper()
	o := ServerOptions{DataDir: t.TempDir(), Token: token, CheckpointInterval: -1, Logf: func(string, ...any) {}}
	for _, f := range opts {
		f(&o)
	}
	s, err := NewServer(o)
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(lis) }()
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close shard: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return s, lis.Addr().String()
}

// copyWeights returns the weights of member s's copy of partition p of
// model under map m.
func copyWeights(t *testing.T, s *Server, m *ShardMap, model string, p int, addr string) []float32 {
	t.Helper()
	sl, err := s.model(m.SliceName(model, p, addr))
	if err != nil {
		t.Fatalf("%s: copy of partition %d: %v", addr, p, err)
	}
	w := make([]float32, sl.localDim)
	sl.dense(0, w)
	return w
}

// moveRig is the cluster of the move tests: three shards reached over gRPC
// only (a and b members, d to join), a client of a and b with two replicas
// and a push window of window, and model "m" of 16 coordinates with
// learning rate 1, so that every push of ones takes one from each coordinate.
type moveRig struct {
	t                   *testing.T
	ctx                 context.Context
	a, b, d             *Server
	aAddr, bAddr, dAddr string
	c                   *Client
	keys                []uint64
	ones, dst           []float32
	pushes              int // pushes of ones the client made
}

func newMoveRig(t *testing.T, token string, window int) *moveRig {
	grpcOnly(t) // its shards are reached over gRPC in both passes
	r := &moveRig{t: t, ctx: testCtx(t)}
	r.a, r.aAddr = grpcServer(t, token)
	r.b, r.bAddr = grpcServer(t, token)
	r.d, r.dAddr = grpcServer(t, token)
	r.c = dial(t, []string{r.aAddr, r.bAddr}, token, WithReplicas(2), WithPushWindow(window))
	spec := ModelSpec{Name: "m", Dim: 16, LearningRate: 1}
	if err := r.c.CreateModel(r.ctx, spec); err != nil {
		t.Fatal(err)
	}
	r.keys = make([]uint64, spec.Dim)
	r.ones = make([]float32, spec.Dim)
	r.dst = make([]float32, spec.Dim)
	for i := range r.keys {
		r.keys[i], r.ones[i] = uint64(i), 1
	}
	return r
}

// push pulls and pushes every key n times and flushes. It may run on a
// goroutine of its own: it reports a failure with t.Error and returns false.
func (r *moveRig) push(n int) bool {
	for range n {
		if err := r.c.PullSparse(r.ctx, "m", r.keys, r.dst); err != nil {
			r.t.Error(err)
			return false
		}
		if err := r.c.PushSparse(r.ctx, "m", r.keys, r.ones); err != nil {
			r.t.Error(err)
			return false
		}
		r.pushes++
	}
	if err := r.c.Flush(r.ctx); err != nil {
		r.t.Error(err)
		return false
	}
	return true
}

// mustPush is push on the test's goroutine: a failure ends the test.
func (r *moveRig) mustPush(n int) {
	if !r.push(n) {
		r.t.FailNow()
	}
}

// checkCopies fails the test unless every copy of every partition under
// final holds every push but at most slack, the pushes moves may lose.
func (r *moveRig) checkCopies(final *ShardMap, slack, moves int) {
	srv := map[string]*Server{r.aAddr: r.a, r.bAddr: r.b, r.dAddr: r.d}
	for p, owners := range final.Owners {
		for _, addr := range owners {
			for k, v := range copyWeights(r.t, srv[addr], final, "m", p, addr) {
				if applied := int(-v); applied > r.pushes || applied < r.pushes-slack {
					r.t.Errorf("partition %d copy on %s, coordinate %d: %d of %d pushes (allowed loss %d over %d moves)", p, addr, k, applied, r.pushes, slack, moves)
				}
			}
		}
	}
}

// TestMoveOntoMemberWithOpenStreams: a partition's copy moves onto a member
// the pushing client already has push and pull streams to (here the drain
// after a join moves a's copy onto the joined shard). The client's streams
// there were opened with an older map than the one it routes the moved
// partition's pushes with; the destination must still apply none of them
// before it holds the source's final state, and the client must keep
// pushing to that copy afterwards. The destination's import is held until
// the client has pushed (or is seen waiting for the map), so the race a
// loaded machine makes likely happens on every run. Every copy of every
// partition must then hold every push but at most one push window per
// move (see Elasticity).
func TestMoveOntoMemberWithOpenStreams(t *testing.T) {
	const token, window = "move-streams", 4
	r := newMoveRig(t, token, window)
	ctx, c, d := r.ctx, r.c, r.d
	r.mustPush(3)

	moves := 0
	progress := func(ev MoveEvent) {
		if ev.Move != nil {
			moves++
		}
	}
	if _, err := JoinCluster(ctx, r.aAddr, r.dAddr, progress, WithToken(token)); err != nil {
		t.Fatal(err)
	}
	// The client follows the join and opens its streams to d.
	r.mustPush(3)
	if _, ok := c.conns[r.dAddr]; !ok {
		t.Fatalf("after the join the client has no connection to %s: %+v", r.dAddr, c.Map())
	}

	// Drain a: its copy moves onto d. Hold d's import until the client
	// has pushed through the move, or is waiting at d for the new map.
	importing := make(chan struct{})
	release := make(chan struct{})
	var once sync.Once
	hold := func(uint32) {
		once.Do(func() { close(importing) })
		<-release
	}
	d.beforeImport.Store(&hold)
	drained := make(chan error, 1)
	var final *ShardMap
	go func() {
		var err error
		final, err = DrainMember(ctx, r.bAddr, r.aAddr, progress, WithToken(token))
		drained <- err
	}()
	<-importing
	pushed := make(chan struct{})
	go func() { defer close(pushed); r.push(10) }()
wait:
	for d.smap.waiting.Load() == 0 {
		select {
		case <-pushed:
			break wait
		case err := <-drained:
			t.Fatalf("the drain ended while d's import was held: %v", err)
		default:
			time.Sleep(time.Millisecond)
		}
	}
	close(release)
	if err := <-drained; err != nil {
		t.Fatal(err)
	}
	<-pushed
	r.push(20)
	if t.Failed() {
		return
	}

	if len(final.Hosted(r.aAddr)) != 0 || len(final.Hosted(r.dAddr)) != 2 {
		t.Fatalf("after the drain: %+v, want both partitions on %s", final, r.dAddr)
	}
	r.checkCopies(final, window*moves, moves)
}

// TestMovedPushRefusalAfterRefresh: the MOVED refusal of a push sent with
// the older map reaches the client after it has already refreshed its map
// (a pull was redirected first). The refusal must not give up the copy the
// newer map puts in the refused copy's place: that copy did not fail, and
// the client must keep pushing to it. The source's refusal and the
// destination's import are held so the events come in that order on every
// run.
func TestMovedPushRefusalAfterRefresh(t *testing.T) {
	const token, window = "moved-after-refresh", 4
	r := newMoveRig(t, token, window)
	ctx, c, a, d, keys := r.ctx, r.c, r.a, r.d, r.keys
	r.mustPush(3)

	// The join moves a's primary copy of partition 0 to d. Hold d's import.
	importing, releaseImport := make(chan struct{}), make(chan struct{})
	var importOnce sync.Once
	holdImport := func(uint32) {
		importOnce.Do(func() { close(importing) })
		<-releaseImport
	}
	d.beforeImport.Store(&holdImport)
	joined := make(chan error, 1)
	var final *ShardMap
	go func() {
		var err error
		final, err = JoinCluster(ctx, r.aAddr, r.dAddr, nil, WithToken(token))
		joined <- err
	}()
	<-importing

	// A push with the old map: a refuses its part of partition 0; hold
	// the refusal.
	refusing, releaseRefusal := make(chan struct{}), make(chan struct{})
	var refuseOnce sync.Once
	holdRefusal := func() {
		refuseOnce.Do(func() { close(refusing) })
		<-releaseRefusal
	}
	a.beforeRefusePush.Store(&holdRefusal)
	if err := c.PushSparse(ctx, "m", keys, r.ones); err != nil {
		t.Fatal(err)
	}
	r.pushes++
	<-refusing

	// A pull is redirected by a (MOVED): the client refreshes to the
	// join's map and pulls partition 0 from d, which waits for that map.
	pulled := make(chan error, 1)
	go func() { pulled <- c.PullSparse(ctx, "m", keys, r.dst) }()
	for d.smap.waiting.Load() == 0 {
		select {
		case err := <-pulled:
			t.Fatalf("the pull did not wait at d for the newer map: %v", err)
		default:
			time.Sleep(time.Millisecond)
		}
	}
	// Now the refusal reaches the client, which already has the newer map.
	close(releaseRefusal)
	for {
		c.errMu.Lock()
		got := c.pushErr != nil
		c.errMu.Unlock()
		if got {
			break
		}
		time.Sleep(time.Millisecond)
	}
	close(releaseImport)
	if err := <-joined; err != nil {
		t.Fatal(err)
	}
	if err := <-pulled; err != nil {
		t.Fatal(err)
	}
	r.mustPush(20)

	if got := final.Owners[0]; got[0] != r.dAddr {
		t.Fatalf("after the join partition 0 is on %v, want its primary on %s", got, r.dAddr)
	}
	r.checkCopies(final, window, 1) // one move
}
