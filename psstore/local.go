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
	token string
	addrs []string

	entries  []*inprocEntry // this cluster's in-process registrations
	ready    chan struct{}  // closed once the shards are open (or failed to)
	servers  []*Server      // set before ready is closed
	startErr error

	stopOnce sync.Once
	stopErr  error
	wg       sync.WaitGroup
	cancel   context.CancelFunc

	// wake starts the open of a lazy cluster (StartLocalLazy); woken is
	// closed then. An eager cluster is woken at its start.
	wakeOnce sync.Once
	woken    chan struct{}
}

func (lc *LocalCluster) wake() { lc.wakeOnce.Do(func() { close(lc.woken) }) }

// StartLocal starts n shards listening on random 127.0.0.1 ports. An empty
// token is replaced by a random one (see Token). The cluster stops when ctx
// is done or Close is called; Close waits for it and reports errors.
func StartLocal(ctx context.Context, n int, dataDir, token string, opts ...func(*ServerOptions)) (*LocalCluster, error) {
	lc, err := StartLocalAsync(ctx, n, dataDir, token, opts...)
	if err != nil {
		return nil, err
	}
	if err := lc.Wait(); err != nil {
		lc.Close()
		return nil, err
	}
	return lc, nil
}

// StartLocalAsync is StartLocal returning as soon as the shards' addresses
// are bound, while their data directories open in the background (opening
// one — badger creating and syncing its files — is most of a small apply's
// fixed cost, which the first stages can overlap). A client of this process
// that dials them meanwhile waits for them (Dial's context bounds the
// wait) and gets the start's error if it failed; a gRPC client's
// connection waits in the listener's queue. Wait waits for the start.
func StartLocalAsync(ctx context.Context, n int, dataDir, token string, opts ...func(*ServerOptions)) (*LocalCluster, error) {
	lc, err := startLocal(ctx, n, dataDir, token, opts)
	if err == nil {
		lc.wake()
	}
	return lc, err
}

// StartLocalLazy is StartLocalAsync that opens the shards only when they are
// first needed: a client of this process dialling one of them, a connection
// to one of their addresses, or Wait or Servers. A run that never uses them
// (a small model's full-batch training) never opens their data directories,
// which is a small apply's largest fixed cost in time and memory; Close of a
// cluster never woken creates nothing.
func StartLocalLazy(ctx context.Context, n int, dataDir, token string, opts ...func(*ServerOptions)) (*LocalCluster, error) {
	return startLocal(ctx, n, dataDir, token, opts)
}

func startLocal(ctx context.Context, n int, dataDir, token string, opts []func(*ServerOptions)) (*LocalCluster, error) {
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
	lc := &LocalCluster{token: token, ready: make(chan struct{}), woken: make(chan struct{})}
	liss := make([]net.Listener, n)
	for i := range liss {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			for _, l := range liss[:i] {
				l.Close()
			}
			return nil, fmt.Errorf("psstore: listen on 127.0.0.1: %w", err)
		}
		liss[i] = lis
		lc.addrs = append(lc.addrs, lis.Addr().String())
	}
	entries := make([]*inprocEntry, n)
	for i, a := range lc.addrs {
		entries[i] = registerPending(a) // clients of this process will call it directly (inproc.go)
		entries[i].wake = lc.wake
	}
	lc.entries = entries
	cctx, cancel := context.WithCancel(ctx)
	lc.cancel = cancel
	// A connection to a shard not yet open wakes the cluster; the shard's
	// server then accepts it first (firstConnListener).
	served := make([]net.Listener, n)
	for i, lis := range liss {
		fl := &firstConnListener{Listener: lis, first: make(chan net.Conn, 1)}
		served[i] = fl
		lc.wg.Add(1)
		go func() { // owned by lc: ends when the listener closes or yields its first connection
			defer lc.wg.Done()
			c, err := lis.Accept()
			if err != nil {
				close(fl.first)
				return
			}
			fl.first <- c
			lc.wake()
		}()
	}
	lc.wg.Add(1)
	go func() { // owned by lc: opens the shards once woken, then serves them until Close
		defer lc.wg.Done()
		select {
		case <-lc.woken:
		case <-cctx.Done():
			for i, lis := range liss {
				lis.Close()
				entries[i].resolve(nil, errors.New("psstore: the local cluster closed before it was used"))
			}
			close(lc.ready)
			return
		}
		lc.open(n, dataDir, token, opts, served, entries)
	}()
	lc.wg.Add(1)
	go func() {
		defer lc.wg.Done()
		<-cctx.Done()
		<-lc.ready
		lc.stop()
	}()
	return lc, nil
}

// open opens the shards' data directories in parallel, then serves each on
// its listener, and closes lc.ready.
func (lc *LocalCluster) open(n int, dataDir, token string, opts []func(*ServerOptions), liss []net.Listener, entries []*inprocEntry) {
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
		for i, s := range servers {
			if s != nil {
				s.Close()
			}
			liss[i].Close()
			entries[i].resolve(nil, err)
		}
		lc.startErr = err
		close(lc.ready)
		return
	}
	lc.servers = servers
	for i, s := range servers {
		entries[i].resolve(s, nil)
	}
	close(lc.ready)
	var serve sync.WaitGroup
	for i, s := range servers {
		serve.Add(1)
		go func() {
			defer serve.Done()
			if err := s.Serve(liss[i]); err != nil {
				s.opts.Logf("psstore: local shard %d: %v", i, err)
			}
		}()
	}
	serve.Wait()
}

// firstConnListener is a listener whose first connection was accepted
// before its server existed: Accept returns it first.
type firstConnListener struct {
	net.Listener
	first chan net.Conn // closed without a connection if the listener failed
	once  sync.Once
}

func (l *firstConnListener) Accept() (net.Conn, error) {
	var c net.Conn
	l.once.Do(func() { c = <-l.first })
	if c != nil {
		return c, nil
	}
	return l.Listener.Accept()
}

// Wait waits until the shards are open and returns the error of their
// start, if it failed. It opens a lazy cluster's shards.
func (lc *LocalCluster) Wait() error {
	lc.wake()
	<-lc.ready
	return lc.startErr
}

// Addrs are the shards' addresses, in shard order.
func (lc *LocalCluster) Addrs() []string { return append([]string(nil), lc.addrs...) }

// Token is the token every request must carry.
func (lc *LocalCluster) Token() string { return lc.token }

// Servers exposes the shards (for their counters); it waits for their start
// and is empty if it failed.
func (lc *LocalCluster) Servers() []*Server {
	lc.wake()
	<-lc.ready
	return lc.servers
}

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

// Close stops every shard (checkpointing changed models) and waits for
// them; it reports a failed start too.
func (lc *LocalCluster) Close() error {
	lc.cancel()
	<-lc.ready
	lc.stop()
	lc.wg.Wait()
	forget(lc.entries)
	return errors.Join(lc.startErr, lc.stopErr)
}
