package psstore

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	pb "github.com/stratus-ml/stratus/psstore/proto"
)

// authMetadataKey is the gRPC metadata entry carrying "Bearer <token>".
const authMetadataKey = "authorization"

// authenticator checks every request's token and counts refusals. It also
// tracks requests in flight so the server can let them finish when it
// stops: all unary calls and the short streams, not the long-lived push and
// pull streams, which have no natural end.
type authenticator struct {
	want     [32]byte // SHA-256 of the token: compared in constant time, whatever the lengths
	failures atomic.Uint64
	requests atomic.Uint64

	mu       sync.Mutex
	stopping bool
	inflight sync.WaitGroup
}

// longLived names the streams that last as long as a client does.
var longLived = map[string]bool{
	pb.PSStore_Push_FullMethodName:       true,
	pb.PSStore_PullStream_FullMethodName: true,
}

// enter registers a request in flight, or refuses it when stopping.
func (a *authenticator) enter() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.stopping {
		return status.Error(codes.Unavailable, "psstore: shard is shutting down")
	}
	a.inflight.Add(1)
	return nil
}

// drain refuses new requests and waits up to d for those in flight.
func (a *authenticator) drain(d time.Duration) {
	a.mu.Lock()
	a.stopping = true
	a.mu.Unlock()
	done := make(chan struct{})
	go func() { a.inflight.Wait(); close(done) }()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	}
}

func newAuthenticator(token string) *authenticator {
	return &authenticator{want: sha256.Sum256([]byte(token))}
}

func (a *authenticator) check(ctx context.Context) error {
	vals := metadata.ValueFromIncomingContext(ctx, authMetadataKey)
	ok := false
	if len(vals) == 1 {
		if tok, found := strings.CutPrefix(vals[0], "Bearer "); found {
			got := sha256.Sum256([]byte(tok))
			ok = subtle.ConstantTimeCompare(got[:], a.want[:]) == 1
		}
	}
	if !ok {
		a.failures.Add(1)
		if len(vals) == 0 {
			return status.Error(codes.Unauthenticated, "psstore: missing token: every request must carry the run's token (authorization: Bearer <token>)")
		}
		return status.Error(codes.Unauthenticated, "psstore: wrong token: this shard serves another run, or the token was mistyped")
	}
	a.requests.Add(1)
	return nil
}

func (a *authenticator) unary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	if err := a.check(ctx); err != nil {
		return nil, err
	}
	if err := a.enter(); err != nil {
		return nil, err
	}
	defer a.inflight.Done()
	return h(ctx, req)
}

func (a *authenticator) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	if err := a.check(ss.Context()); err != nil {
		return err
	}
	if !longLived[info.FullMethod] {
		if err := a.enter(); err != nil {
			return err
		}
		defer a.inflight.Done()
	}
	return h(srv, ss)
}

// tokenCreds attaches the token to every RPC. The metadata map is built
// once and shared: gRPC only reads it.
type tokenCreds struct {
	md map[string]string
}

func newTokenCreds(token string) *tokenCreds {
	return &tokenCreds{md: map[string]string{authMetadataKey: "Bearer " + token}}
}

func (c *tokenCreds) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return c.md, nil
}

// RequireTransportSecurity is false: a loopback or private-network cluster
// may run without TLS; the token still gates every request.
func (c *tokenCreds) RequireTransportSecurity() bool { return false }
