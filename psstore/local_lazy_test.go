package psstore

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// TestStartLocalLazy: a lazy cluster that nobody uses creates nothing under
// its data directory and closes cleanly; one that a client dials — directly
// in this process, or over gRPC — opens then and serves it, and its data is
// there for the next start.
func TestStartLocalLazy(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "shards")
	unused, err := StartLocalLazy(context.Background(), 2, dir, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := unused.Close(); err != nil {
		t.Fatalf("Close of an unused lazy cluster: %v", err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("an unused lazy cluster left %s behind (%v)", dir, err)
	}

	for _, tr := range []Transport{TransportAuto, TransportGRPC} {
		t.Run(tr.String(), func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "shards")
			lc, err := StartLocalLazy(context.Background(), 2, dir, "")
			if err != nil {
				t.Fatal(err)
			}
			c := dial(t, lc.Addrs(), lc.Token(), WithReplicas(1), WithTransport(tr))
			if want := tr == TransportAuto; c.InProcess() != want {
				t.Fatalf("InProcess() = %v, want %v", c.InProcess(), want)
			}
			ctx := testCtx(t)
			if err := c.Put(ctx, "k", []byte("v")); err != nil {
				t.Fatal(err)
			}
			c.Close()
			if err := lc.Close(); err != nil {
				t.Fatal(err)
			}
			again, err := StartLocal(context.Background(), 2, dir, "")
			if err != nil {
				t.Fatal(err)
			}
			defer again.Close()
			c2 := dial(t, again.Addrs(), again.Token(), WithReplicas(1), WithTransport(tr))
			if v, err := c2.Get(ctx, "k"); err != nil || string(v) != "v" {
				t.Fatalf("Get after a restart = %q, %v; want the value the lazy cluster stored", v, err)
			}
		})
	}
}
