package psstore

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	pb "github.com/stratus-ml/stratus/psstore/proto"
)

// rawClient speaks the gRPC protocol directly, to send what the Client
// never would.
func rawClient(t testing.TB, addr string) pb.PSStoreClient {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(64<<20)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return pb.NewPSStoreClient(conn)
}

func withToken(ctx context.Context, tok string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, authMetadataKey, "Bearer "+tok)
}

func TestAuthRefusal(t *testing.T) {
	lc, good := startCluster(t, 1)
	ctx := testCtx(t)
	raw := rawClient(t, lc.Addrs()[0])
	srv := lc.Servers()[0]
	before := srv.AuthFailures()

	cases := []struct {
		name string
		ctx  context.Context
		want string
	}{
		{"missing", ctx, "missing token"},
		{"wrong", withToken(ctx, "not-the-token"), "wrong token"},
		{"prefix of the real one", withToken(ctx, lc.Token()[:5]), "wrong token"},
		{"no bearer", metadata.AppendToOutgoingContext(ctx, authMetadataKey, lc.Token()), "wrong token"},
	}
	for _, c := range cases {
		_, err := raw.Hello(c.ctx, &pb.HelloRequest{ShardIndex: 0, ShardCount: 1})
		if status.Code(err) != codes.Unauthenticated || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: unary err = %v", c.name, err)
		}
		// streams are checked too
		stream, err := raw.Push(c.ctx)
		if err == nil {
			_, err = stream.Recv()
		}
		if status.Code(err) != codes.Unauthenticated {
			t.Errorf("%s: push stream err = %v", c.name, err)
		}
		ls, err := raw.List(c.ctx, &pb.ListRequest{})
		if err == nil {
			_, err = ls.Recv()
		}
		if status.Code(err) != codes.Unauthenticated {
			t.Errorf("%s: list stream err = %v", c.name, err)
		}
	}
	if got := srv.AuthFailures() - before; got != uint64(3*len(cases)) {
		t.Fatalf("auth failures counted %d, want %d", got, 3*len(cases))
	}
	st, err := good.ServerStats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st[0].AuthFailures != srv.AuthFailures() || st[0].Requests == 0 {
		t.Fatalf("stats = %+v", st[0])
	}
	// The right token works on the raw client too.
	if _, err := raw.Hello(withToken(ctx, lc.Token()), &pb.HelloRequest{ShardIndex: 0, ShardCount: 1}); err != nil {
		t.Fatal(err)
	}
	// Dial with a wrong token fails up front, saying so.
	_, err = Dial(ctx, lc.Addrs(), WithToken("nope"))
	if status.Code(err) != codes.Unauthenticated || !strings.Contains(err.Error(), lc.Addrs()[0]) {
		t.Fatalf("Dial with wrong token: %v", err)
	}
	if _, err := Dial(ctx, lc.Addrs()); err == nil || !strings.Contains(err.Error(), "token") {
		t.Fatalf("Dial without token: %v", err)
	}
}

// selfSigned writes a self-signed certificate for 127.0.0.1 and its key.
func selfSigned(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "psstore test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

func TestTLS(t *testing.T) {
	grpcOnly(t) // shards in other processes, or the network itself
	certFile, keyFile, pool := selfSigned(t)
	lc, err := StartLocal(context.Background(), 2, t.TempDir(), "tok", func(o *ServerOptions) {
		o.TLSCertFile, o.TLSKeyFile = certFile, keyFile
	})
	if err != nil {
		t.Fatal(err)
	}
	defer lc.Close()
	ctx := testCtx(t)
	c := dial(t, lc.Addrs(), "tok", WithTLS(&tls.Config{RootCAs: pool}))
	if err := c.Put(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	if err := c.CreateModel(ctx, ModelSpec{Name: "m", Dim: 8, LearningRate: 1}); err != nil {
		t.Fatal(err)
	}
	if err := c.PushSparse(ctx, "m", []uint64{1, 6}, []float32{1, 2}); err != nil {
		t.Fatal(err)
	}
	if err := c.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if v, err := c.Get(ctx, "k"); err != nil || string(v) != "v" {
		t.Fatalf("Get over TLS: %q %v", v, err)
	}
	short, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := Dial(short, lc.Addrs(), WithToken("tok")); err == nil {
		t.Fatal("plaintext client talked to a TLS shard")
	}
	if _, err := Dial(short, lc.Addrs(), WithToken("tok"), WithTLS(&tls.Config{})); err == nil {
		t.Fatal("client trusted an unknown self-signed certificate")
	}
	if _, err := NewServer(ServerOptions{DataDir: t.TempDir(), Token: "x", TLSCertFile: certFile}); err == nil {
		t.Fatal("TLS certificate without key accepted")
	}
}

func TestUnreachable(t *testing.T) {
	grpcOnly(t) // shards in other processes, or the network itself
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	ctx := testCtx(t)
	_, err = Dial(ctx, []string{addr}, WithToken("t"))
	if err == nil || !strings.Contains(err.Error(), addr) || !strings.Contains(err.Error(), "stratus psstore serve") {
		t.Fatalf("Dial to a closed port: %v", err)
	}
	// A peer that accepts connections but never answers: the caller's
	// deadline is honoured.
	black, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer black.Close()
	go func() {
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := black.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	_, err = Dial(short, []string{black.Addr().String()}, WithToken("t"))
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), black.Addr().String()) {
		t.Fatalf("Dial error does not match context.DeadlineExceeded: %v", err)
	}
}

func TestPlacementRecorded(t *testing.T) {
	dir := t.TempDir()
	lc, err := StartLocal(context.Background(), 2, dir, "tok")
	if err != nil {
		t.Fatal(err)
	}
	c := dial(t, lc.Addrs(), "tok")
	if err := c.Put(testCtx(t), "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	c.Close()
	if err := lc.Close(); err != nil {
		t.Fatal(err)
	}
	lc, err = StartLocal(context.Background(), 2, dir, "tok")
	if err != nil {
		t.Fatal(err)
	}
	defer lc.Close()
	ctx := testCtx(t)
	addrs := lc.Addrs()
	_, err = Dial(ctx, []string{addrs[1], addrs[0]}, WithToken("tok"))
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "holds shard 1 of 2") {
		t.Fatalf("swapped shards: %v", err)
	}
	_, err = Dial(ctx, addrs[:1], WithToken("tok"))
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "as shard 0 of 1") {
		t.Fatalf("fewer shards: %v", err)
	}
	c = dial(t, addrs, "tok")
	if v, err := c.Get(ctx, "k"); err != nil || string(v) != "v" {
		t.Fatalf("after restart: %q %v", v, err)
	}
}

// TestMalformedAndOversized sends the shard what no Client would; every
// request gets a clear error and the shard keeps serving.
func TestMalformedAndOversized(t *testing.T) {
	lc, c := startCluster(t, 1, func(o *ServerOptions) {
		o.MaxKeysPerRequest = 1000
		o.MaxModels = 3
		o.MaxModelBytes = 1 << 20
		o.MaxValueBytes = 1 << 20
		o.MaxInflightBytes = 1 << 20
		o.MaxKeyBytes = 64
		o.MaxMessageBytes = 6 << 20
	})
	ctx := testCtx(t)
	raw := rawClient(t, lc.Addrs()[0])
	rctx := withToken(ctx, lc.Token())
	if err := c.CreateModel(ctx, ModelSpec{Name: "m", Dim: 1000, LearningRate: 1}); err != nil {
		t.Fatal(err)
	}
	keys := appendKeys(nil, []uint64{1, 2, 900})
	grads := appendValues(nil, []float32{1, 2, 3}, false)
	pull := func(r *pb.PullSparseRequest) error { _, err := raw.PullSparse(rctx, r); return err }
	expect := func(name string, err error, code codes.Code, sub string) {
		t.Helper()
		if status.Code(err) != code || !strings.Contains(err.Error(), sub) {
			t.Errorf("%s: err = %v, want %v containing %q", name, err, code, sub)
		}
	}
	expect("bad varint", pull(&pb.PullSparseRequest{Model: "m", Keys: []byte{0x80, 0x80}, NumKeys: 1}), codes.InvalidArgument, "truncated")
	expect("count too high", pull(&pb.PullSparseRequest{Model: "m", Keys: keys, NumKeys: 4}), codes.InvalidArgument, "malformed")
	expect("count too low", pull(&pb.PullSparseRequest{Model: "m", Keys: keys, NumKeys: 2}), codes.InvalidArgument, "trailing")
	expect("huge count", pull(&pb.PullSparseRequest{Model: "m", Keys: keys, NumKeys: 1 << 31}), codes.InvalidArgument, "limit")
	expect("unsorted", pull(&pb.PullSparseRequest{Model: "m", Keys: []byte{5, 0}, NumKeys: 2}), codes.InvalidArgument, "strictly increasing")
	expect("out of range", pull(&pb.PullSparseRequest{Model: "m", Keys: []byte{0xe8, 0x07}, NumKeys: 1}), codes.InvalidArgument, "key 1000 is out of range")
	expect("bad encoding", pull(&pb.PullSparseRequest{Model: "m", Keys: keys, NumKeys: 3, Encoding: 7}), codes.InvalidArgument, "encoding")
	expect("no model", pull(&pb.PullSparseRequest{Model: "zz", Keys: keys, NumKeys: 3}), codes.NotFound, "does not exist")
	many := make([]uint64, 1001)
	for i := range many {
		many[i] = uint64(i)
	}
	expect("too many keys", pull(&pb.PullSparseRequest{Model: "m", Keys: appendKeys(nil, many), NumKeys: 1001}), codes.InvalidArgument, "limit of 1000")
	expect("message too big", pull(&pb.PullSparseRequest{Model: "m", Keys: make([]byte, 7<<20), NumKeys: 1}), codes.ResourceExhausted, "")

	// Pushes: a bad push is refused in its ack and the stream goes on.
	stream, err := raw.Push(rctx)
	if err != nil {
		t.Fatal(err)
	}
	bad := []*pb.PushRequest{
		{Model: "m", Keys: keys, NumKeys: 3, Grads: grads[:8]},
		{Model: "m", Keys: keys, NumKeys: 3},
		{Model: "m", Keys: keys, NumKeys: 3, Grads: appendValues(nil, []float32{1, float32(nanValue()), 3}, false)},
		{Model: "m", Keys: []byte{0xff}, NumKeys: 1, Grads: grads[:4]},
		{Model: "nope", Keys: keys, NumKeys: 3, Grads: grads},
		{Model: "m", Keys: keys, NumKeys: 3, Grads: grads, CountPush: true},               // good: no ack asked
		{Model: "m", Keys: keys, NumKeys: 3, Grads: grads, CountPush: true, AckNow: true}, // good, acked
	}
	// Failed pushes are acknowledged at once with their error; good ones
	// only when asked (cumulatively).
	wantAcks := []struct {
		seq  uint64
		code codes.Code
	}{{1, codes.InvalidArgument}, {2, codes.InvalidArgument}, {3, codes.InvalidArgument}, {4, codes.InvalidArgument}, {5, codes.NotFound}, {7, codes.OK}}
	for i, r := range bad {
		r.Seq = uint64(i + 1)
		if err := stream.Send(r); err != nil {
			t.Fatal(err)
		}
	}
	for _, want := range wantAcks {
		ack, err := stream.Recv()
		if err != nil {
			t.Fatalf("ack %d: %v", want.seq, err)
		}
		if ack.Seq != want.seq || codes.Code(ack.Code) != want.code {
			t.Errorf("ack %v %v %q, want %d %v", ack.Seq, codes.Code(ack.Code), ack.Message, want.seq, want.code)
		}
	}
	stream.CloseSend()
	if _, err := stream.Recv(); err != io.EOF {
		t.Errorf("stream end: %v", err)
	}
	w := make([]float32, 3)
	if err := c.PullSparse(ctx, "m", []uint64{1, 2, 900}, w); err != nil || w[0] != -2 || w[2] != -6 {
		t.Fatalf("only the two good pushes should apply: %v %v", w, err)
	}

	// Models: too big, too many.
	err = c.CreateModel(ctx, ModelSpec{Name: "huge", Dim: 1 << 62, LearningRate: 1})
	expect("huge model", err, codes.ResourceExhausted, "needs")
	err = c.CreateModel(ctx, ModelSpec{Name: "big", Dim: 1 << 18, LearningRate: 1, Optimizer: "adagrad"})
	expect("model over memory limit", err, codes.ResourceExhausted, "needs")
	for _, n := range []string{"a", "b"} {
		if err := c.CreateModel(ctx, ModelSpec{Name: n, Dim: 10, LearningRate: 1}); err != nil {
			t.Fatal(err)
		}
	}
	expect("fourth model", c.CreateModel(ctx, ModelSpec{Name: "c", Dim: 10, LearningRate: 1}), codes.ResourceExhausted, "limit of 3 models")

	// KV limits.
	expect("value too big", c.Put(ctx, "k", make([]byte, 1<<20+1)), codes.Unknown, "exceed the value limit")
	ps, err := raw.Put(rctx)
	if err != nil {
		t.Fatal(err)
	}
	ps.Send(&pb.PutChunk{Key: []byte("k"), Data: make([]byte, 1<<19)})
	ps.Send(&pb.PutChunk{Data: make([]byte, 1<<19+1)})
	_, err = ps.CloseAndRecv()
	expect("streamed value too big", err, codes.ResourceExhausted, "exceeds the limit")
	ps, _ = raw.Put(rctx)
	ps.Send(&pb.PutChunk{Key: []byte("k"), Data: []byte("a")})
	ps.Send(&pb.PutChunk{Key: []byte("k2"), Data: []byte("b")})
	_, err = ps.CloseAndRecv()
	expect("key in later chunk", err, codes.InvalidArgument, "first chunk")
	expect("long key", c.Put(ctx, strings.Repeat("x", 65), nil), codes.InvalidArgument, "exceeds the limit of 64")
	gs, err := raw.Get(rctx, &pb.GetRequest{Keys: make([][]byte, 1001)})
	if err == nil {
		_, err = gs.Recv()
	}
	expect("get too many keys", err, codes.InvalidArgument, "limit")
	ms, _ := raw.Merge(rctx)
	ms.Send(&pb.MergeChunk{Key: []byte("f"), Op: pb.MergeOp_MERGE_OP_SUM, Data: []byte{1, 2, 3}})
	_, err = ms.CloseAndRecv()
	expect("odd float operand", err, codes.InvalidArgument, "not a float32 vector")
	ms, _ = raw.Merge(rctx)
	ms.Send(&pb.MergeChunk{Key: []byte("f"), Op: 99})
	_, err = ms.CloseAndRecv()
	expect("unknown merge op", err, codes.InvalidArgument, "unknown op")
	_, err = raw.Hello(rctx, &pb.HelloRequest{ShardIndex: 3, ShardCount: 2})
	expect("impossible placement", err, codes.InvalidArgument, "impossible")

	// In-flight budget (1 MiB): while one stream holds 600 KiB, a second
	// stream of 600 KiB is refused; the first is then accepted, and afterwards
	// the shard accepts again. The shard reads a stream's chunk when it gets to
	// it: wait until it holds the first one's bytes (an event, not a time).
	a, _ := raw.Put(rctx)
	if err := a.Send(&pb.PutChunk{Key: []byte("held"), Data: make([]byte, 600<<10)}); err != nil && err != io.EOF {
		t.Fatal(err)
	}
	<-lc.ready
	for lc.servers[0].inflightHeld.Load() < 600<<10 {
		if ctx.Err() != nil {
			t.Fatal("the shard never held the first stream's 600 KiB")
		}
		runtime.Gosched()
	}
	b, _ := raw.Put(rctx)
	if err := b.Send(&pb.PutChunk{Key: []byte("refused"), Data: make([]byte, 600<<10)}); err != nil && err != io.EOF {
		t.Fatal(err)
	}
	_, errB := b.CloseAndRecv()
	expect("in-flight budget", errB, codes.ResourceExhausted, "retry later")
	if _, err := a.CloseAndRecv(); err != nil {
		t.Fatalf("in-flight budget: the holder was refused: %v", err)
	}
	if err := c.Put(ctx, "small", []byte("x")); err != nil {
		t.Fatalf("after the budget is free: %v", err)
	}
	if v, err := c.Get(ctx, "held"); err != nil || len(v) != 600<<10 {
		t.Fatalf("held value: %d bytes %v", len(v), err)
	}
}

func nanValue() float64 { var z float64; return z / z }
