package psstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"sync"
)

// LocalCluster is n in-process shards on 127.0.0.1, as the executor runs
// for the local backend. Each shard keeps its data in dataDir/shard-<i>.
// Clients of this process that Dial their addresses call them directly
// (see Transport); other processes reach them over gRPC.
type LocalCluster struct {
	token   string
	addrs   []string
	servers []*Server

	stopOnce sync.Once
	stopErr  error
	wg       sync.WaitGroup
	cancel   context.CancelFunc
}

// StartLocal starts n shards listening on random 127.0.0.1 ports. An empty
// token is replaced by a random one (see Token). The cluster stops when ctx
// is done or Close is called; Close waits for it and reports errors.
func StartLocal(ctx context.Context, n int, dataDir, token string, opts ...func(*ServerOptions)) (*LocalCluster, error) {
	if n < 1 {
		return nil, fmt.Errorf("psstore: start local cluster: %d shards: need at least 1", n)
	}
	if token == "" {
		var b [16]byte
		if _, err := rand.Read(b[:]); err != nil {
			return nil, fmt.Errorf("psstore: generate token: %w", err)
		}
		token = hex.EncodeToString(b[:])
	}
	lc := &LocalCluster{token: token}
	// The shards open their data directories in parallel: opening one is
	// most of a small apply's fixed cost (badger creates and syncs its files).
	servers := make([]*Server, n)
	errs := make([]error, n)
	var open sync.WaitGroup
	for i := range n {
		open.Add(1)
		go func() {
			defer open.Done()
			o := ServerOptions{DataDir: filepath.Join(dataDir, fmt.Sprintf("shard-%d", i)), Token: token}
			for _, f := range opts {
				f(&o)
			}
			servers[i], errs[i] = NewServer(o)
		}()
	}
	open.Wait()
	if err := errors.Join(errs...); err != nil {
		for _, s := range servers {
			if s != nil {
				s.Close()
			}
		}
		return nil, err
	}
	for i, s := range servers {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			for _, s := range servers[i:] {
				s.Close()
			}
			lc.closeServers()
			return nil, fmt.Errorf("psstore: listen on 127.0.0.1: %w", err)
		}
		lc.servers = append(lc.servers, s)
		lc.addrs = append(lc.addrs, lis.Addr().String())
		registerInproc(lis.Addr().String(), s) // clients of this process call it directly (inproc.go)
		lc.wg.Add(1)
		go func() {
			defer lc.wg.Done()
			if err := s.Serve(lis); err != nil {
				s.opts.Logf("psstore: local shard %d: %v", i, err)
			}
		}()
	}
	cctx, cancel := context.WithCancel(ctx)
	lc.cancel = cancel
	lc.wg.Add(1)
	go func() {
		defer lc.wg.Done()
		<-cctx.Done()
		lc.stop()
	}()
	return lc, nil
}

// Addrs are the shards' addresses, in shard order.
func (lc *LocalCluster) Addrs() []string { return append([]string(nil), lc.addrs...) }

// Token is the token every request must carry.
func (lc *LocalCluster) Token() string { return lc.token }

// Servers exposes the shards (for their counters).
func (lc *LocalCluster) Servers() []*Server { return lc.servers }

func (lc *LocalCluster) stop() {
	lc.stopOnce.Do(func() { lc.stopErr = lc.closeServers() })
}

func (lc *LocalCluster) closeServers() error {
	errs := make([]error, len(lc.servers))
	var wg sync.WaitGroup
	for i, s := range lc.servers {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = s.Close() }()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Close stops every shard (checkpointing changed models) and waits for them.
func (lc *LocalCluster) Close() error {
	lc.cancel()
	lc.wg.Wait()
	lc.stop()
	return lc.stopErr
}
