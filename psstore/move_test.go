package psstore

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestJoinAndDrainOnline runs two shard processes, keeps KV writers and
// pushers working, joins a third shard and drains the first, all over real
// gRPC; then every acknowledged KV write must be readable from a client
// that knows only one seed, every model slice keeps its identity, and
// every copy of every partition holds every push but at most a push window
// per pusher and move (a push in flight to a copy when it moved is lost on
// that copy, see Elasticity).
//
// With one partition per shard (the placement of a fixed list) and R=1 the
// join moves nothing (every member already holds its one partition); with
// 4 partitions per shard the join itself moves
// partitions onto the new shard, with R=1 as with R=2.
func TestJoinAndDrainOnline(t *testing.T) {
	for _, tc := range []struct{ r, perShard int }{{1, 1}, {2, 1}, {1, 4}, {2, 4}} {
		name := fmt.Sprintf("R%d", tc.r)
		if tc.perShard > 1 {
			name += fmt.Sprintf("-P%dx", tc.perShard)
		}
		t.Run(name, func(t *testing.T) { testJoinAndDrain(t, tc.r, tc.perShard) })
	}
}

func testJoinAndDrain(t *testing.T, r, perShard int) {
	const token = "move-test"
	const window = 4
	ctx := testCtx(t)
	a := startChildParts(t, t.TempDir(), token, perShard)
	b := startChildParts(t, t.TempDir(), token, perShard)
	c := dial(t, []string{a.addr, b.addr}, token, WithReplicas(r), WithPushWindow(window))
	if got := c.Map().Partitions; got != 2*perShard {
		t.Fatalf("a cluster of 2 shards asking for %d partitions per shard has %d partitions", perShard, got)
	}
	spec := ModelSpec{Name: "m", Dim: 64, LearningRate: 1}
	if err := c.CreateModel(ctx, spec); err != nil {
		t.Fatal(err)
	}
	before, err := c.ModelStats(ctx, "m")
	if err != nil {
		t.Fatal(err)
	}

	// Writers: each its own client (its own view of the map).
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var acked sync.Map // key -> value
	var pushes atomic.Int64
	var werr atomic.Value
	const writers, pushers = 2, 2
	for w := range writers {
		wc := dial(t, []string{a.addr, b.addr}, token, WithReplicas(r))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				k, v := fmt.Sprintf("w%d/%d", w, i), fmt.Sprintf("v%d", i)
				if err := wc.Put(ctx, k, []byte(v)); err != nil {
					werr.Store(fmt.Errorf("put %s: %w", k, err))
					return
				}
				acked.Store(k, v)
			}
		}()
	}
	keys := make([]uint64, spec.Dim)
	ones := make([]float32, spec.Dim)
	for i := range keys {
		keys[i], ones[i] = uint64(i), 1
	}
	for range pushers {
		pc := dial(t, []string{a.addr, b.addr}, token, WithReplicas(r), WithPushWindow(window))
		wg.Add(1)
		go func() {
			defer wg.Done()
			dst := make([]float32, len(keys))
			for {
				select {
				case <-stop:
					if err := pc.Flush(ctx); err != nil {
						werr.Store(fmt.Errorf("flush: %w", err))
					}
					return
				default:
				}
				if err := pc.PullSparse(ctx, "m", keys, dst); err != nil {
					werr.Store(fmt.Errorf("pull: %w", err))
					return
				}
				if err := pc.PushSparse(ctx, "m", keys, ones); err != nil {
					werr.Store(fmt.Errorf("push: %w", err))
					return
				}
				pushes.Add(1)
			}
		}()
	}
	// Let the writers get going: wait for acknowledged writes, not time.
	for n := 0; n < 50; {
		n = 0
		acked.Range(func(any, any) bool { n++; return true })
		if werr.Load() != nil {
			break
		}
		time.Sleep(time.Millisecond)
	}

	d := startChild(t, t.TempDir(), token, time.Hour)
	var moves atomic.Int64
	var versions []uint64
	progress := func(ev MoveEvent) {
		versions = append(versions, ev.Map.Version)
		if ev.Move != nil {
			moves.Add(1)
		}
	}
	joined, err := JoinCluster(ctx, a.addr, d.addr, progress, WithToken(token))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := joined.Member(d.addr); !ok {
		t.Fatalf("the joined shard is not a member: %+v", joined)
	}
	// The new shard's share: a third of the copies, rounded down (so
	// nothing with one partition per shard and R=1).
	if got, want := len(joined.Hosted(d.addr)), joined.Partitions*r/3; got != want {
		t.Fatalf("after the join %s holds %d partitions, want %d: %+v", d.addr, got, want, joined)
	}
	joinMoves := moves.Load()
	final, err := DrainMember(ctx, b.addr, a.addr, progress, WithToken(token))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := final.Member(a.addr); ok || len(final.Hosted(a.addr)) != 0 || len(final.Hosted(d.addr)) == 0 {
		t.Fatalf("drained member still in the map: %+v", final)
	}
	if !slices.IsSorted(versions) || versions[0] != 2 {
		t.Errorf("map versions %v: want increasing from 2", versions)
	}
	close(stop)
	wg.Wait()
	if err := werr.Load(); err != nil {
		t.Fatal(err)
	}

	// The drained shard is gone for good.
	a.kill()
	rc := dial(t, []string{d.addr}, token) // a seed: resolves to the map
	if rc.MapVersion() != final.Version || rc.Replicas() != r {
		t.Fatalf("seed client has map v%d with R=%d, want v%d R=%d", rc.MapVersion(), rc.Replicas(), final.Version, r)
	}
	n := 0
	acked.Range(func(k, v any) bool {
		n++
		got, err := rc.Get(ctx, k.(string))
		if err != nil || string(got) != v.(string) {
			t.Errorf("acknowledged %s=%s reads %q, %v", k, v, got, err)
			return false
		}
		return true
	})
	if n < 50 {
		t.Fatalf("only %d writes acknowledged", n)
	}
	after, err := rc.ModelStats(ctx, "m")
	if err != nil {
		t.Fatal(err)
	}
	if after.Lost != "" {
		t.Fatalf("model lost updates after the moves: %s", after.Lost)
	}
	for p, s := range after.Shards {
		if s.Incarnation != before.Shards[p].Incarnation {
			t.Errorf("partition %d: incarnation %x after the moves, %x before: the slice was not moved but made anew", p, s.Incarnation, before.Shards[p].Incarnation)
		}
	}
	// Every copy of every partition, not only the one PullDense reads.
	total := pushes.Load()
	slack := int64(window * pushers * int(moves.Load()))
	for p, owners := range final.Owners {
		for j, addr := range owners {
			var w []float32
			if err := rc.denseOnce(ctx, rc.conns[addr], final.SliceName("m", p, addr), &w); err != nil {
				t.Fatalf("partition %d copy %d on %s: %v", p, j, addr, err)
			}
			for i, v := range w {
				applied := int64(-v)
				if applied > total || applied < total-slack {
					t.Errorf("partition %d copy %d on %s, coordinate %d: %d of %d pushes (allowed loss %d)", p, j, addr, i*final.Partitions+p, applied, total, slack)
				}
			}
		}
	}
	if joinMoves != int64(len(joined.Hosted(d.addr))) {
		t.Errorf("the join reported %d moves for the %d partitions it moved", joinMoves, len(joined.Hosted(d.addr)))
	}
	t.Logf("R=%d, %d partitions: %d KV writes, %d pushes, %d moves (%d in the join), map v%d", r, final.Partitions, n, total, moves.Load(), joinMoves, final.Version)
}

// TestMovedRedirects: a member given a newer map refuses a client's older
// one (MOVED) and the client refreshes by itself; a member behind the
// client's map makes the request wait until it has the map. Every
// acknowledged write is read back.
func TestMovedRedirects(t *testing.T) {
	overGRPC(t)
	lc, c := startCluster(t, 2)
	ctx := testCtx(t)
	if err := c.Put(ctx, "before", []byte("1")); err != nil {
		t.Fatal(err)
	}
	if v := c.MapVersion(); v != 1 {
		t.Fatalf("a static cluster's client has map version %d, want 1", v)
	}
	addrs := lc.Addrs()
	m := StaticMap(addrs, 2)
	install := func(m *ShardMap, on ...int) {
		t.Helper()
		for _, i := range on {
			if err := lc.Servers()[i].installMap(m, addrs[i]); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Version 2 on both members (a change that moves nothing): the client's
	// next request is refused, and it follows.
	m2 := m.Clone()
	m2.Version = 2
	install(m2, 0, 1)
	if err := c.Put(ctx, "after", []byte("2")); err != nil {
		t.Fatal(err)
	}
	if v := c.MapVersion(); v != 2 {
		t.Fatalf("after MOVED the client has map version %d, want 2", v)
	}
	// Version 3 on member 0 only: a client dialled through it as a seed
	// has version 3, and member 1 makes its requests wait for the map.
	m3 := m.Clone()
	m3.Version = 3
	install(m3, 0)
	seed := dial(t, addrs[:1], lc.Token())
	if v := seed.MapVersion(); v != 3 {
		t.Fatalf("seed client has map version %d, want 3", v)
	}
	var k1 string // a key of partition 1, whose primary is member 1
	for i := 0; ; i++ {
		if k1 = fmt.Sprintf("k%d", i); seed.partFor(k1) == 1 {
			break
		}
	}
	done := make(chan error, 1)
	go func() { done <- seed.Put(ctx, k1, []byte("3")) }()
	for lc.Servers()[1].smap.waiting.Load() == 0 { // the Put waits at member 1
		select {
		case err := <-done:
			t.Fatalf("member 1 (map version 2) answered a request made with version 3 without waiting for the map: %v", err)
		default:
			time.Sleep(time.Millisecond)
		}
	}
	install(m3, 1)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{"before": "1", "after": "2", k1: "3"} {
		for _, cl := range []*Client{c, seed} {
			got, err := cl.Get(ctx, k)
			if err != nil || string(got) != want {
				t.Errorf("%s = %q, %v; want %q", k, got, err, want)
			}
		}
	}
	if v := c.MapVersion(); v != 3 {
		t.Errorf("the first client ends at map version %d, want 3", v)
	}
	// An older map never replaces a newer one.
	install(m2, 0, 1)
	if m := lc.Servers()[0].Map(); m.Version != 3 {
		t.Errorf("installing version 2 over 3 left version %d", m.Version)
	}
}
