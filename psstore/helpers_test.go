package psstore

import (
	"context"
	"testing"
	"time"
)

// startCluster starts n in-process shards on t.TempDir and dials them.
func startCluster(t testing.TB, n int, opts ...func(*ServerOptions)) (*LocalCluster, *Client) {
	t.Helper()
	lc, err := StartLocal(context.Background(), n, t.TempDir(), "", opts...)
	if err != nil {
		t.Fatalf("StartLocal: %v", err)
	}
	t.Cleanup(func() {
		if err := lc.Close(); err != nil {
			t.Errorf("close cluster: %v", err)
		}
	})
	return lc, dial(t, lc.Addrs(), lc.Token())
}

func dial(t testing.TB, addrs []string, token string, opts ...Option) *Client {
	t.Helper()
	c, err := Dial(testCtx(t), addrs, append([]Option{WithToken(token)}, opts...)...)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// testCtx bounds a test's requests so a bug shows as a failure, not a hang.
func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}
