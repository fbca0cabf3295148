package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/stratus-ml/stratus/psstore"
)

// elasticRun is one join/drain measurement: the steady reference and the
// same workload during membership changes, on one cluster.
type elasticRun struct {
	partitions, replicas int
	steady, during       result
	cycles, moves        int
}

// benchElastic measures pull+push while the cluster changes: n shard
// processes founding a cluster of perShard partitions per shard with r
// copies, then, for the same duration, a cycle of a fresh shard joining
// (its share of the partitions moving onto it) and being drained out again
// (moving them back), repeated; every request made during the cycles
// counts. The steady-state reference is the same workload on the same
// cluster just before. With one partition per shard and one copy a joining
// member takes nothing, so that case needs r >= 2.
func benchElastic(ctx context.Context, cfg config, n, perShard, r int, space uint64, keySets [][][]uint64) (er elasticRun, err error) {
	er.replicas = r
	dir, err := os.MkdirTemp("", "benchcmp-elastic-")
	if err != nil {
		return
	}
	defer os.RemoveAll(dir)
	const token = "benchcmp"
	var addrs []string
	var pids []int
	for i := 0; i < n+1; i++ {
		addr, pid, stop, serr := startShardProcessParts(fmt.Sprintf("%s/shard-%d", dir, i), token, perShard)
		if serr != nil {
			err = serr
			return
		}
		defer stop()
		addrs = append(addrs, addr)
		pids = append(pids, pid)
	}
	extra := addrs[n]
	addrs = addrs[:n]
	clients := make([]*psstore.Client, cfg.clients)
	for i := range clients {
		c, derr := psstore.Dial(ctx, addrs, psstore.WithToken(token), psstore.WithReplicas(r))
		if derr != nil {
			err = derr
			return
		}
		defer c.Close()
		clients[i] = c
	}
	er.partitions = clients[0].Map().Partitions
	const model = "bench"
	if err = clients[0].CreateModel(ctx, psstore.ModelSpec{Name: model, Dim: space, Optimizer: "adagrad", LearningRate: 0.1}); err != nil {
		return
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
	warm := cfg
	warm.duration = cfg.duration / 10
	if _, err = measure("warm-up", warm, pids, pullPush); err != nil {
		return
	}
	label := fmt.Sprintf("psstore %d shards P=%d R=%d pull+push", n, er.partitions, r)
	if er.steady, err = measure(label+", steady", cfg, pids, pullPush); err != nil {
		return
	}
	// The membership cycles run beside the measurement, until it ends.
	var wg sync.WaitGroup
	var cycleErr error
	stopCycles := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		count := func(ev psstore.MoveEvent) {
			if ev.Move != nil {
				er.moves++
			}
		}
		for {
			select {
			case <-stopCycles:
				return
			default:
			}
			if _, e := psstore.JoinCluster(ctx, addrs[0], extra, count, psstore.WithToken(token)); e != nil {
				cycleErr = e
				return
			}
			if _, e := psstore.DrainMember(ctx, addrs[0], extra, count, psstore.WithToken(token)); e != nil {
				cycleErr = e
				return
			}
			er.cycles++
		}
	}()
	er.during, err = measure(label+", moving", cfg, pids, pullPush)
	close(stopCycles)
	wg.Wait()
	if err == nil {
		err = cycleErr
	}
	if err == nil && er.cycles == 0 {
		err = errors.New("no join and drain completed during the measurement: make -duration longer")
	}
	for _, c := range clients {
		if err == nil {
			err = c.Flush(ctx)
		}
	}
	return
}

// benchFailover measures, over trials fresh clusters of n shard processes
// with R copies, the time from kill -9 of a primary to the first push on
// its keys that is acknowledged (PushSparse then Flush succeed), for one
// client pulling and pushing continuously.
func benchFailover(ctx context.Context, cfg config, n, trials int) ([]time.Duration, error) {
	var out []time.Duration
	for trial := range trials {
		d, err := failoverOnce(ctx, cfg, n, trial)
		if err != nil {
			return out, err
		}
		out = append(out, d)
	}
	return out, nil
}

func failoverOnce(ctx context.Context, cfg config, n, trial int) (time.Duration, error) {
	dir, err := os.MkdirTemp("", "benchcmp-failover-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	const token = "benchcmp"
	var addrs []string
	var pids []int
	for i := 0; i < n; i++ {
		addr, pid, stop, err := startShardProcess(fmt.Sprintf("%s/shard-%d", dir, i), token)
		if err != nil {
			return 0, err
		}
		defer stop()
		addrs = append(addrs, addr)
		pids = append(pids, pid)
	}
	c, err := psstore.Dial(ctx, addrs, psstore.WithToken(token), psstore.WithReplicas(max(2, cfg.replicas)))
	if err != nil {
		return 0, err
	}
	defer c.Close()
	const model = "bench"
	if err := c.CreateModel(ctx, psstore.ModelSpec{Name: model, Dim: 1 << 16, Optimizer: "adagrad", LearningRate: 0.1}); err != nil {
		return 0, err
	}
	// Keys of the victim's partition (coordinate k is on partition k mod n).
	victim := trial % n
	keys := make([]uint64, 500)
	grads := make([]float32, len(keys))
	for i := range keys {
		keys[i], grads[i] = uint64(i*n+victim), 0.01
	}
	dst := make([]float32, len(keys))
	push := func() error {
		if err := c.PullSparse(ctx, model, keys, dst); err != nil {
			return err
		}
		if err := c.PushSparse(ctx, model, keys, grads); err != nil {
			return err
		}
		return c.Flush(ctx)
	}
	for range 50 {
		if err := push(); err != nil {
			return 0, err
		}
	}
	if err := syscall.Kill(pids[victim], syscall.SIGKILL); err != nil {
		return 0, err
	}
	t0 := time.Now()
	for time.Since(t0) < time.Minute {
		if push() == nil {
			return time.Since(t0), nil
		}
	}
	return 0, fmt.Errorf("no push on the killed primary's keys succeeded within a minute")
}
