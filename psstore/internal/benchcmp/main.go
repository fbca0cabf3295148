// Command benchcmp measures psstore against Redis on the same workload, side
// by side in one run: 4 concurrent clients, each repeatedly reading and
// writing 2,000 random keys out of 2^20 with float32 values, over loopback.
//
//	psstore: PullSparse + PushSparse (adagrad applied on the shard), with
//	         1 and 4 shards, each shard a separate process;
//	Redis:   MGET, MSET, and MGET followed by MSET, against Debian's
//	         redis-server started on a free port (skipped when missing).
//
// Beside them, in the same run: psstore pull+push p50 while a shard joins
// and is drained again and again (partitions moving online), as a ratio to
// the steady p50 on the same cluster; and the time from kill -9 of a
// primary to the first acknowledged push on its keys.
//
// For every workload it prints requests/s, keys/s (keys per request x
// requests/s; a pull + push or MGET + MSET of 2,000 keys is one request of
// 2,000 keys) and the p50/p99 latency of a request, then the ratio of
// keys/s. Run it with psstore/bench.sh or `go run ./psstore/internal/benchcmp`.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stratus-ml/stratus/psstore"
)

type config struct {
	clients   int
	keys      int
	spaceBits int
	duration  time.Duration
	shards    []int
	replicas  int
	inProcess bool
	elastic   int // shards of the join/drain measurement (0: skip)
	// elasticParts are the partitions per shard of the join/drain
	// measurement's clusters, each measured with 1 and 2 copies (1 copy
	// only with more partitions than shards: otherwise a join moves none).
	elasticParts []int
	failover     int // trials of the kill -9 measurement (0: skip)
}

func main() {
	var (
		cfg        config
		shardsFlag string
		serveDir   string
		serveToken string
		servePer   int
		partsFlag  string
	)
	flag.IntVar(&cfg.clients, "clients", 4, "concurrent clients")
	flag.IntVar(&cfg.keys, "keys", 2000, "keys per request")
	flag.IntVar(&cfg.spaceBits, "space", 20, "keys are drawn from [0, 2^space)")
	flag.DurationVar(&cfg.duration, "duration", 5*time.Second, "measurement time per workload")
	flag.StringVar(&shardsFlag, "shards", "1,4", "psstore shard counts to measure (empty: Redis only)")
	flag.IntVar(&cfg.replicas, "replicas", 1, "copies of every key range (psstore.WithReplicas; 2 doubles the pushes)")
	flag.BoolVar(&cfg.inProcess, "inprocess", false, "run psstore shards in this process instead of one process per shard")
	flag.IntVar(&cfg.elastic, "elastic", 2, "measure pull+push while a shard joins and is drained, repeatedly, on a cluster of `N` shard processes (0 skips)")
	flag.IntVar(&cfg.failover, "failover", 3, "measure the time from kill -9 of a primary to the first acknowledged push on its keys, over `N` fresh 2-shard clusters with 2 copies (0 skips)")
	flag.StringVar(&serveDir, "serve-shard", "", "internal: serve one shard on this data dir")
	flag.StringVar(&serveToken, "token", "", "internal: token for -serve-shard")
	flag.IntVar(&servePer, "partitions-per-shard", 0, "internal: partitions per shard for -serve-shard")
	flag.StringVar(&partsFlag, "elastic-partitions", "1,2,4", "partitions per shard of the join/drain measurement's clusters (comma-separated; 1 is a fixed list's placement)")
	flag.Parse()
	if serveDir != "" {
		os.Exit(serveShard(serveDir, serveToken, servePer))
	}
	for _, f := range strings.Split(partsFlag, ",") {
		if strings.TrimSpace(f) == "" {
			continue
		}
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			fmt.Fprintf(os.Stderr, "benchcmp: -elastic-partitions %q: want whole numbers of at least 1\n", partsFlag)
			os.Exit(2)
		}
		cfg.elasticParts = append(cfg.elasticParts, n)
	}
	for _, f := range strings.Split(shardsFlag, ",") {
		if strings.TrimSpace(f) == "" {
			continue
		}
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			fmt.Fprintf(os.Stderr, "benchcmp: bad -shards entry %q\n", f)
			os.Exit(2)
		}
		cfg.shards = append(cfg.shards, n)
	}
	if err := run(cfg); err != nil {
		fmt.Fprintln(os.Stderr, "benchcmp:", err)
		os.Exit(1)
	}
}

// result is one workload's measurement.
type result struct {
	name     string
	requests int
	elapsed  time.Duration
	keys     int
	lat      []time.Duration
	cpu      time.Duration // CPU used by the client and server processes
	srvCPU   time.Duration // CPU used by the server processes alone
}

func (r result) srvCPUPerReq() time.Duration {
	if r.requests == 0 {
		return 0
	}
	return r.srvCPU / time.Duration(r.requests)
}

func (r result) cpuPerReq() time.Duration {
	if r.requests == 0 {
		return 0
	}
	return r.cpu / time.Duration(r.requests)
}

func (r result) reqPerSec() float64  { return float64(r.requests) / r.elapsed.Seconds() }
func (r result) keysPerSec() float64 { return r.reqPerSec() * float64(r.keys) }
func (r result) pct(p float64) time.Duration {
	if len(r.lat) == 0 {
		return 0
	}
	return r.lat[min(len(r.lat)-1, int(float64(len(r.lat))*p))]
}

func run(cfg config) error {
	ctx := context.Background()
	space := uint64(1) << cfg.spaceBits
	keySets := makeKeySets(cfg, space)
	fmt.Printf("workload: %d clients, %d random keys out of 2^%d per request, float32 values, loopback, %v per measurement\n",
		cfg.clients, cfg.keys, cfg.spaceBits, cfg.duration)
	where := "one process per shard"
	if cfg.inProcess {
		where = "shards in the client process"
	}
	fmt.Printf("machine: %d CPUs (GOMAXPROCS %d), %s/%s; psstore: %s, %d cop(ies) of every key range\n\n", runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.GOOS, runtime.GOARCH, where, cfg.replicas)

	var results []result
	for _, n := range cfg.shards {
		rs, err := benchPSStore(ctx, cfg, n, space, keySets)
		if err != nil {
			return fmt.Errorf("psstore with %d shards: %w", n, err)
		}
		results = append(results, rs...)
	}
	var elastic []elasticRun
	if cfg.elastic > 0 && !cfg.inProcess {
		for _, per := range cfg.elasticParts {
			for _, r := range []int{1, 2} {
				if r == 1 && per == 1 {
					continue // a join moves nothing: the reference is R=2
				}
				er, err := benchElastic(ctx, cfg, cfg.elastic, per, r, space, keySets)
				if err != nil {
					return fmt.Errorf("psstore join/drain (%d partitions per shard, %d copies): %w", per, r, err)
				}
				results = append(results, er.steady, er.during)
				elastic = append(elastic, er)
			}
		}
	}
	var failover []time.Duration
	if cfg.failover > 0 && !cfg.inProcess {
		var err error
		if failover, err = benchFailover(ctx, cfg, 2, cfg.failover); err != nil {
			return fmt.Errorf("psstore failover: %w", err)
		}
	}
	redisNote := ""
	if bin, ok := findBinary("redis-server"); ok {
		rs, version, err := benchRedis(ctx, cfg, bin, space, keySets)
		if err != nil {
			return fmt.Errorf("redis: %w", err)
		}
		redisNote = "redis " + version
		results = append(results, rs...)
	} else {
		redisNote = "redis-server not found (apt-get install redis-server, or `make tools`): Redis side skipped"
	}

	fmt.Printf("%-44s %8s %12s %9s %9s %9s %9s\n", "system / workload", "req/s", "keys/s", "p50", "p99", "CPU/req", "srv CPU")
	for _, r := range results {
		srv := fmtDur(r.srvCPUPerReq())
		if cfg.inProcess && strings.HasPrefix(r.name, "psstore") {
			srv = "-"
		}
		fmt.Printf("%-44s %8.0f %12.0f %9s %9s %9s %9s\n", r.name, r.reqPerSec(), r.keysPerSec(), fmtDur(r.pct(0.5)), fmtDur(r.pct(0.99)), fmtDur(r.cpuPerReq()), srv)
	}
	fmt.Println("(CPU/req: client and server processes together; srv CPU: the server processes alone)")
	fmt.Println()
	fmt.Println(redisNote)
	find := func(name string) *result {
		for i := range results {
			if results[i].name == name {
				return &results[i]
			}
		}
		return nil
	}
	for _, er := range elastic {
		s, d := er.steady, er.during
		fmt.Printf("psstore %d shard(s), %d partitions, %d copies, pull+push during %d join+drain cycles (%d partition moves): p50 %s vs %s steady (%.2fx), p99 %s vs %s\n",
			cfg.elastic, er.partitions, er.replicas, er.cycles, er.moves, fmtDur(d.pct(0.5)), fmtDur(s.pct(0.5)), float64(d.pct(0.5))/float64(max(1, s.pct(0.5))), fmtDur(d.pct(0.99)), fmtDur(s.pct(0.99)))
	}
	if len(failover) > 0 {
		fmt.Printf("kill -9 of a primary → first acknowledged push on its keys (2 shards, 2 copies, target < 1s):")
		for _, d := range failover {
			fmt.Printf(" %s", d.Round(time.Millisecond))
		}
		fmt.Println()
	}
	rb := find("redis MGET+MSET")
	rh := find("redis MGET+MSET, hot keys")
	for _, n := range cfg.shards {
		p := find(fmt.Sprintf("psstore %d shard(s) pull+push", n))
		if p == nil {
			continue
		}
		fmt.Printf("psstore %d shard(s) pull+push, %d clients: p50 %s (target <= 300µs)", n, cfg.clients, fmtDur(p.pct(0.5)))
		if p1 := find(fmt.Sprintf("psstore %d shard(s) pull+push, 1 client", n)); p1 != nil {
			fmt.Printf(", 1 client %s", fmtDur(p1.pct(0.5)))
		}
		fmt.Println()
		if rb != nil && rh != nil {
			fmt.Printf("  keys/s: %.1fx redis MGET+MSET on the same keys, %.1fx on hot keys (target >= 5x)\n",
				p.keysPerSec()/rb.keysPerSec(), p.keysPerSec()/rh.keysPerSec())
		}
	}
	return nil
}

func fmtDur(d time.Duration) string {
	return fmt.Sprintf("%.0fµs", float64(d)/float64(time.Microsecond))
}

// makeKeySets draws 64 key sets per client.
func makeKeySets(cfg config, space uint64) [][][]uint64 {
	sets := make([][][]uint64, cfg.clients)
	for c := range sets {
		rng := rand.New(rand.NewPCG(uint64(c), 42))
		sets[c] = make([][]uint64, 64)
		for s := range sets[c] {
			ks := make([]uint64, cfg.keys)
			for i := range ks {
				ks[i] = rng.Uint64N(space)
			}
			sets[c][s] = ks
		}
	}
	return sets
}

// measure runs op on every client until the duration has passed and
// collects per-request latencies.
func measure(name string, cfg config, pids []int, op func(client, iter int) error) (result, error) {
	srv0 := cpuOf(pids)
	pids = append([]int{os.Getpid()}, pids...)
	cpu0 := cpuOf(pids)
	var stop atomic.Bool
	lats := make([][]time.Duration, cfg.clients)
	errs := make([]error, cfg.clients)
	var wg sync.WaitGroup
	start := time.Now()
	for c := 0; c < cfg.clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lat := make([]time.Duration, 0, 1<<16)
			for i := 0; !stop.Load(); i++ {
				t0 := time.Now()
				if err := op(c, i); err != nil {
					errs[c] = err
					return
				}
				lat = append(lat, time.Since(t0))
			}
			lats[c] = lat
		}()
	}
	time.Sleep(cfg.duration)
	stop.Store(true)
	wg.Wait()
	elapsed := time.Since(start)
	cpu := cpuOf(pids) - cpu0
	srvCPU := cpuOf(pids[1:]) - srv0
	for _, err := range errs {
		if err != nil {
			return result{}, err
		}
	}
	all := slices.Concat(lats...)
	slices.Sort(all)
	return result{name: name, requests: len(all), elapsed: elapsed, keys: cfg.keys, lat: all, cpu: cpu, srvCPU: srvCPU}, nil
}

func benchPSStore(ctx context.Context, cfg config, n int, space uint64, keySets [][][]uint64) ([]result, error) {
	dir, err := os.MkdirTemp("", "benchcmp-psstore-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	const token = "benchcmp"
	var addrs []string
	var pids []int
	if cfg.inProcess {
		lc, err := psstore.StartLocal(ctx, n, dir, token, func(o *psstore.ServerOptions) { o.CheckpointInterval = -1 })
		if err != nil {
			return nil, err
		}
		defer lc.Close()
		addrs = lc.Addrs()
	} else {
		for i := 0; i < n; i++ {
			addr, pid, stop, err := startShardProcess(fmt.Sprintf("%s/shard-%d", dir, i), token)
			if err != nil {
				return nil, err
			}
			defer stop()
			addrs = append(addrs, addr)
			pids = append(pids, pid)
		}
	}
	clients := make([]*psstore.Client, cfg.clients)
	for i := range clients {
		c, err := psstore.Dial(ctx, addrs, psstore.WithToken(token), psstore.WithReplicas(cfg.replicas))
		if err != nil {
			return nil, err
		}
		defer c.Close()
		clients[i] = c
	}
	const model = "bench"
	if err := clients[0].CreateModel(ctx, psstore.ModelSpec{Name: model, Dim: space, Optimizer: "adagrad", LearningRate: 0.1}); err != nil {
		return nil, err
	}
	grads := make([]float32, cfg.keys)
	for i := range grads {
		grads[i] = float32(i%7-3) * 0.01
	}
	dsts := make([][]float32, cfg.clients)
	for i := range dsts {
		dsts[i] = make([]float32, cfg.keys)
	}
	pullPush := func(c, i int) error {
		ks := keySets[c][i%len(keySets[c])]
		if err := clients[c].PullSparse(ctx, model, ks, dsts[c]); err != nil {
			return err
		}
		return clients[c].PushSparse(ctx, model, ks, grads)
	}
	pull := func(c, i int) error {
		return clients[c].PullSparse(ctx, model, keySets[c][i%len(keySets[c])], dsts[c])
	}
	flush := func() error {
		for _, c := range clients {
			if err := c.Flush(ctx); err != nil {
				return err
			}
		}
		return nil
	}
	warm := cfg
	warm.duration = cfg.duration / 10
	if _, err := measure("warm-up", warm, pids, pullPush); err != nil {
		return nil, err
	}
	var out []result
	one := cfg
	one.clients = 1
	for _, w := range []struct {
		name string
		cfg  config
		op   func(int, int) error
	}{
		{fmt.Sprintf("psstore %d shard(s) pull+push", n), cfg, pullPush},
		{fmt.Sprintf("psstore %d shard(s) pull only", n), cfg, pull},
		{fmt.Sprintf("psstore %d shard(s) pull+push, 1 client", n), one, pullPush},
	} {
		r, err := measure(w.name, w.cfg, pids, w.op)
		if err == nil {
			// At most the push window per client is still in flight: let
			// it land before the next run (and report any push error).
			err = flush()
		}
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// startShardProcess re-executes this program as one shard; the shard exits
// when its stdin closes.
func startShardProcess(dir, token string) (string, int, func(), error) {
	return startShardProcessParts(dir, token, 0)
}

// startShardProcessParts is startShardProcess for a shard asking a new
// cluster for perShard partitions per shard (0: one).
func startShardProcessParts(dir, token string, perShard int) (string, int, func(), error) {
	exe, err := os.Executable()
	if err != nil {
		return "", 0, nil, err
	}
	cmd := exec.Command(exe, "-serve-shard", dir, "-token", token, "-partitions-per-shard", strconv.Itoa(perShard))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return "", 0, nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return "", 0, nil, err
	}
	if err := cmd.Start(); err != nil {
		return "", 0, nil, err
	}
	stop := func() {
		stdin.Close()
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "ADDR ") {
		stop()
		return "", 0, nil, fmt.Errorf("shard process did not start: %q %v", line, err)
	}
	return strings.TrimSpace(strings.TrimPrefix(line, "ADDR ")), cmd.Process.Pid, stop, nil
}

// serveShard is the child side of startShardProcess.
func serveShard(dir, token string, perShard int) int {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "shard:", err)
		return 1
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { io.Copy(io.Discard, os.Stdin); cancel() }()
	srv, err := psstore.NewServer(psstore.ServerOptions{DataDir: dir, Token: token, CheckpointInterval: -1, PartitionsPerShard: perShard})
	if err != nil {
		fmt.Fprintln(os.Stderr, "shard:", err)
		return 1
	}
	fmt.Printf("ADDR %s\n", lis.Addr())
	if err := srv.ServeContext(ctx, lis); err != nil {
		fmt.Fprintln(os.Stderr, "shard:", err)
		return 1
	}
	return 0
}

// benchRedis measures MGET, MSET and MGET followed by MSET against a fresh
// redis-server: first on the same key sets as psstore (random keys out of
// 2^space, all populated), then on one hot set of keys 0..keys-1 in a fixed
// shuffled order per client (the redis-benchmark style behind the reference
// figures, kinder to Redis's caches).
func benchRedis(ctx context.Context, cfg config, bin string, space uint64, keySets [][][]uint64) ([]result, string, error) {
	srv, err := startRedis(ctx, bin)
	if err != nil {
		return nil, "", err
	}
	defer srv.Stop()
	pids := []int{srv.cmd.Process.Pid}
	version := redisVersion(srv.addr)
	// Populate every key with a 4-byte value, so reads find data.
	c, err := dialRedis(srv.addr)
	if err != nil {
		return nil, "", err
	}
	val := []byte{0, 0, 0x80, 0x3f} // float32 1.0
	const batch = 10000
	for lo := uint64(0); lo < space; lo += batch {
		hi := min(lo+batch, space)
		c.writeHeader(1 + 2*int(hi-lo))
		c.writeArg([]byte("MSET"))
		for k := lo; k < hi; k++ {
			c.writeArg(redisKey(nil, k))
			c.writeArg(val)
		}
		if err := c.flush(); err != nil {
			return nil, "", err
		}
		if _, err := c.readStatus(); err != nil {
			return nil, "", err
		}
	}
	c.Close()

	conns := make([]*respConn, cfg.clients)
	for i := range conns {
		if conns[i], err = dialRedis(srv.addr); err != nil {
			return nil, "", err
		}
		defer conns[i].Close()
	}
	// Key names are formatted once, up front, as psstore's keys are.
	format := func(sets [][][]uint64) [][][][]byte {
		names := make([][][][]byte, len(sets))
		for cl := range names {
			names[cl] = make([][][]byte, len(sets[cl]))
			for s, ks := range sets[cl] {
				names[cl][s] = make([][]byte, len(ks))
				for i, k := range ks {
					names[cl][s][i] = redisKey(nil, k)
				}
			}
		}
		return names
	}
	hot := make([][][]uint64, cfg.clients)
	for cl := range hot {
		rng := rand.New(rand.NewPCG(uint64(cl), 7))
		ks := make([]uint64, cfg.keys)
		for i := range ks {
			ks[i] = uint64(i)
		}
		rng.Shuffle(len(ks), func(i, j int) { ks[i], ks[j] = ks[j], ks[i] })
		hot[cl] = [][]uint64{ks}
	}
	var out []result
	for _, set := range []struct {
		label string
		names [][][][]byte
	}{{"", format(keySets)}, {", hot keys", format(hot)}} {
		names := set.names
		mget := func(cl, i int) error {
			r := conns[cl]
			ks := names[cl][i%len(names[cl])]
			r.writeHeader(1 + len(ks))
			r.writeArg([]byte("MGET"))
			for _, k := range ks {
				r.writeArg(k)
			}
			if err := r.flush(); err != nil {
				return err
			}
			got := 0
			n, err := r.readArray(func(_ int, v []byte, ok bool) {
				if ok && len(v) == 4 {
					got++
				}
			})
			if err == nil && (n != len(ks) || got != len(ks)) {
				err = fmt.Errorf("MGET returned %d of %d values", got, len(ks))
			}
			return err
		}
		mset := func(cl, i int) error {
			r := conns[cl]
			ks := names[cl][i%len(names[cl])]
			r.writeHeader(1 + 2*len(ks))
			r.writeArg([]byte("MSET"))
			for _, k := range ks {
				r.writeArg(k)
				r.writeArg(val)
			}
			if err := r.flush(); err != nil {
				return err
			}
			_, err := r.readStatus()
			return err
		}
		both := func(cl, i int) error {
			if err := mget(cl, i); err != nil {
				return err
			}
			return mset(cl, i)
		}
		warm := cfg
		warm.duration = cfg.duration / 10
		if _, err := measure("warm-up", warm, pids, both); err != nil {
			return nil, "", err
		}
		for _, w := range []struct {
			name string
			op   func(int, int) error
		}{{"redis MGET", mget}, {"redis MSET", mset}, {"redis MGET+MSET", both}} {
			r, err := measure(w.name+set.label, cfg, pids, w.op)
			if err != nil {
				return nil, "", err
			}
			out = append(out, r)
		}
	}
	return out, version, nil
}

func redisKey(dst []byte, k uint64) []byte {
	return strconv.AppendUint(append(dst, "w:"...), k, 10)
}
