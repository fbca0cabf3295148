package psstore

import (
	"net"
	"strings"
	"testing"
)

// TestNewClusterPartitions: the partition count a new cluster is founded
// with, from what its shards ask for.
func TestNewClusterPartitions(t *testing.T) {
	addrs := []string{"a:1", "b:1", "c:1"}
	for _, tc := range []struct {
		name  string
		prefs map[string]partitionPref
		want  int
		err   string
	}{
		{"none asks", map[string]partitionPref{"a:1": {}, "b:1": {}, "c:1": {}}, 3, ""},
		{"old shards answer nothing", nil, 3, ""},
		{"count", map[string]partitionPref{"a:1": {parts: 12}, "b:1": {parts: 12}, "c:1": {parts: 12}}, 12, ""},
		{"count, one shard down", map[string]partitionPref{"a:1": {parts: 12}, "c:1": {parts: 12}}, 12, ""},
		{"per shard", map[string]partitionPref{"a:1": {perShard: 4}, "b:1": {perShard: 4}, "c:1": {perShard: 4}}, 12, ""},
		{"a count wins over per shard", map[string]partitionPref{"a:1": {parts: 5}, "b:1": {perShard: 4}, "c:1": {perShard: 4}}, 5, ""},
		{"counts disagree", map[string]partitionPref{"a:1": {parts: 6}, "b:1": {parts: 9}}, 0, "a:1 asks for 6, b:1 for 9"},
		{"per shard disagree", map[string]partitionPref{"a:1": {perShard: 4}, "c:1": {perShard: 2}}, 0, "a:1 asks for 4, c:1 for 2"},
		{"fewer than shards", map[string]partitionPref{"b:1": {parts: 2}}, 0, "shard b:1 asks for 2 partitions, fewer than the 3 shards"},
		{"too many", map[string]partitionPref{"a:1": {perShard: MaxPartitions}}, 0, "more than the 4096 partitions"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := newClusterPartitions(addrs, tc.prefs)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("got %d, %v; want an error with %q", got, err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %d, %v; want %d", got, err, tc.want)
			}
		})
	}
}

// TestClusterFoundedWithPartitions: shards started with a partition count
// found a cluster with it (placement: partition p on shard p mod N), keep it
// for later clients, and shards that disagree are refused with both
// addresses named.
func TestClusterFoundedWithPartitions(t *testing.T) {
	grpcOnly(t) // its shards are reached over gRPC in both passes
	const token = "partitions"
	ctx := testCtx(t)
	parts := func(n int) func(*ServerOptions) { return func(o *ServerOptions) { o.Partitions = n } }
	_, a := grpcServer(t, token, parts(6))
	_, b := grpcServer(t, token, parts(6))
	c := dial(t, []string{a, b}, token, WithReplicas(1))
	m := c.Map()
	if m.Partitions != 6 {
		t.Fatalf("founded with --partitions 6: %d partitions", m.Partitions)
	}
	for p, o := range m.Owners {
		if want := []string{a, b}[p%2]; len(o) != 1 || o[0] != want {
			t.Errorf("partition %d on %v, want on %s", p, o, want)
		}
	}
	if err := c.Put(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	spec := ModelSpec{Name: "m", Dim: 13, LearningRate: 1}
	if err := c.CreateModel(ctx, spec); err != nil {
		t.Fatal(err)
	}
	keys := make([]uint64, spec.Dim)
	ones := make([]float32, spec.Dim)
	for i := range keys {
		keys[i], ones[i] = uint64(i), float32(i)
	}
	if err := c.PushSparse(ctx, "m", keys, ones); err != nil {
		t.Fatal(err)
	}
	if err := c.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	// A later client, given one member as a seed, places keys the same way.
	c2 := dial(t, []string{b}, token)
	if got := c2.Map().Partitions; got != 6 {
		t.Fatalf("a later client sees %d partitions", got)
	}
	if v, err := c2.Get(ctx, "k"); err != nil || string(v) != "v" {
		t.Fatalf("k = %q, %v", v, err)
	}
	w, err := c2.PullDense(ctx, "m")
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range w {
		if v != -float32(i) {
			t.Fatalf("coordinate %d = %v, want %v", i, v, -float32(i))
		}
	}

	_, x := grpcServer(t, token, parts(4))
	_, y := grpcServer(t, token, parts(8))
	if _, err := Dial(ctx, []string{x, y}, WithToken(token)); err == nil || !strings.Contains(err.Error(), "disagree") || !strings.Contains(err.Error(), x) || !strings.Contains(err.Error(), y) {
		t.Fatalf("shards asking for 4 and 8 partitions: %v", err)
	}
	for _, bad := range []ServerOptions{{Partitions: -1}, {Partitions: MaxPartitions + 1}, {PartitionsPerShard: -2}} {
		bad.DataDir, bad.Token = t.TempDir(), token
		if s, err := NewServer(bad); err == nil {
			s.Close()
			t.Errorf("NewServer with partitions %d, per shard %d: no error", bad.Partitions, bad.PartitionsPerShard)
		}
	}
}

// TestPartitionsKeptAcrossRestart: a cluster founded with more partitions
// than shards, restarted on other addresses, keeps its partition count for
// a client listing every shard in order, and a list in another order or of
// another length is refused (the shards' recorded placement), as with one
// partition per shard.
func TestPartitionsKeptAcrossRestart(t *testing.T) {
	grpcOnly(t) // its shards are reached over gRPC in both passes
	const token = "restart"
	ctx := testCtx(t)
	dirs := []string{t.TempDir(), t.TempDir()}
	start := func() (addrs []string, stop func()) {
		var srvs []*Server
		var done []chan error
		for _, d := range dirs {
			s, err := NewServer(ServerOptions{DataDir: d, Token: token, Partitions: 4, CheckpointInterval: -1, Logf: func(string, ...any) {}})
			if err != nil {
				t.Fatal(err)
			}
			lis, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			ch := make(chan error, 1)
			go func() { ch <- s.Serve(lis) }()
			srvs, done, addrs = append(srvs, s), append(done, ch), append(addrs, lis.Addr().String())
		}
		return addrs, func() {
			for i, s := range srvs {
				if err := s.Close(); err != nil {
					t.Error(err)
				}
				if err := <-done[i]; err != nil {
					t.Error(err)
				}
			}
		}
	}
	addrs, stop := start()
	c := dial(t, addrs, token)
	if err := c.Put(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	c.Close()
	stop()

	addrs, stop = start()
	defer stop()
	if _, err := Dial(ctx, []string{addrs[1], addrs[0]}, WithToken(token)); err == nil || !strings.Contains(err.Error(), "holds shard 1 of 4") {
		t.Fatalf("swapped shards: %v", err)
	}
	if _, err := Dial(ctx, addrs[:1], WithToken(token)); err == nil || !strings.Contains(err.Error(), "holds shard 0 of 4") {
		t.Fatalf("fewer shards: %v", err)
	}
	c = dial(t, addrs, token)
	if got := c.Map().Partitions; got != 4 {
		t.Fatalf("after the restart: %d partitions, want 4", got)
	}
	if v, err := c.Get(ctx, "k"); err != nil || string(v) != "v" {
		t.Fatalf("after the restart: %q, %v", v, err)
	}
}
