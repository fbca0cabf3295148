// Package taskenv builds the Env a task handler runs with from the task's TaskEnv
// alone, caching connections across invocations of one process: the local backend
// shares one Factory among its goroutines, a Lambda function keeps one across warm
// invocations, and the executor gives coordinators the same services.
package taskenv

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"

	"github.com/stratus-ml/stratus/blob"
	"github.com/stratus-ml/stratus/blob/blobs"
	"github.com/stratus-ml/stratus/operators"
	"github.com/stratus-ml/stratus/psstore"
	"github.com/stratus-ml/stratus/state/sharedcache"
)

// Factory makes Envs and the services behind them. It is safe for concurrent use.
type Factory struct {
	logger   *slog.Logger
	progress func(t *operators.Task, done, total int64)

	mu      sync.Mutex
	stores  map[storeKey]blob.Store
	clients map[string]*psstore.Client // by token and addresses
}

type storeKey struct{ uri, region, endpoint string }

// Option configures a Factory.
type Option func(*Factory)

// WithLogger sets the logger handlers log to.
func WithLogger(l *slog.Logger) Option { return func(f *Factory) { f.logger = l } }

// WithProgress delivers handlers' progress reports.
func WithProgress(fn func(t *operators.Task, done, total int64)) Option {
	return func(f *Factory) { f.progress = fn }
}

// New returns a Factory.
func New(opts ...Option) *Factory {
	f := &Factory{logger: slog.New(slog.DiscardHandler), stores: map[storeKey]blob.Store{}, clients: map[string]*psstore.Client{}}
	for _, o := range opts {
		o(f)
	}
	return f
}

// Env returns the environment for t.
func (f *Factory) Env(ctx context.Context, t *operators.Task) (operators.Env, error) {
	return &env{Services: f.Services(t.Env), f: f, task: t, logger: f.logger.With("task", t.Name())}, nil
}

// Services returns the services of a run with environment te.
func (f *Factory) Services(te operators.TaskEnv) operators.Services {
	return &services{f: f, te: te}
}

// Close releases cached connections.
func (f *Factory) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stores = map[storeKey]blob.Store{}
	var first error
	for k, c := range f.clients {
		if err := c.Close(); err != nil && first == nil {
			first = err
		}
		delete(f.clients, k)
	}
	return first
}

// psstore returns a client of the shards in te, dialled once per process.
func (f *Factory) psstore(ctx context.Context, te operators.TaskEnv) (*psstore.Client, error) {
	if len(te.PSStore) == 0 {
		return nil, fmt.Errorf("no psstore shards configured for this run: the lambda backend needs psstore = [\"host:port\", …] in its backend block, with the token in STRATUS_PSSTORE_TOKEN")
	}
	k := te.Token + "\x00" + strings.Join(te.PSStore, ",") + "\x00" + te.PSStoreCA + "\x00" + strconv.Itoa(te.PSStoreReplicas)
	f.mu.Lock()
	defer f.mu.Unlock()
	if c, ok := f.clients[k]; ok {
		return c, nil
	}
	opts, err := PSStoreOptions(te)
	if err != nil {
		return nil, err
	}
	c, err := psstore.Dial(ctx, te.PSStore, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to psstore: %w%s", err, TLSHint(te))
	}
	f.clients[k] = c
	return c, nil
}

func (f *Factory) store(ctx context.Context, te operators.TaskEnv, uri string) (blob.Store, error) {
	if uri == "" {
		return nil, fmt.Errorf("no blob store configured for this run")
	}
	k := storeKey{uri, te.BlobRegion, te.BlobEndpoint}
	f.mu.Lock()
	defer f.mu.Unlock()
	if s, ok := f.stores[k]; ok {
		return s, nil
	}
	opts := blobs.Options{Region: te.BlobRegion, Endpoint: te.BlobEndpoint}
	s, err := blobs.Open(ctx, uri, opts)
	if err != nil {
		return nil, fmt.Errorf("open blob store %s: %w", uri, err)
	}
	// Stages adopted from a shared cache by reference read their objects from
	// it, on first use.
	s = sharedcache.Overlay(s, opts)
	f.stores[k] = s
	return s, nil
}

type services struct {
	f  *Factory
	te operators.TaskEnv
}

func (s *services) Blob(ctx context.Context) (blob.Store, error) {
	return s.f.store(ctx, s.te, s.te.Blob)
}

func (s *services) PSStore(ctx context.Context) (*psstore.Client, error) {
	return s.f.psstore(ctx, s.te)
}

func (s *services) OpenStore(ctx context.Context, uri string) (blob.Store, error) {
	return s.f.store(ctx, s.te, uri)
}

type env struct {
	operators.Services
	f      *Factory
	task   *operators.Task
	logger *slog.Logger
}

func (e *env) Logger() *slog.Logger { return e.logger }

func (e *env) Progress(done, total int64) {
	if e.f.progress != nil {
		e.f.progress(e.task, done, total)
	}
}
