package main

import (
	"context"
	"fmt"
	"testing"

	"github.com/stratus-ml/stratus/internal/testtools"
)

// TestRESPAgainstRedis checks the minimal RESP client against a real
// redis-server: MSET, MGET with hits and misses, status and error replies.
func TestRESPAgainstRedis(t *testing.T) {
	bin := testtools.Binary(t, "redis-server")
	srv, err := startRedis(context.Background(), bin)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	c, err := dialRedis(srv.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if s, err := c.do("PING"); err != nil || s != "PONG" {
		t.Fatalf("PING = %q, %v", s, err)
	}
	c.writeHeader(7)
	c.writeArg([]byte("MSET"))
	for i := range 3 {
		c.writeArg(redisKey(nil, uint64(i)))
		c.writeArg([]byte(fmt.Sprintf("v%d\r\n", i))) // binary-safe values
	}
	if err := c.flush(); err != nil {
		t.Fatal(err)
	}
	if s, err := c.readStatus(); err != nil || s != "OK" {
		t.Fatalf("MSET = %q, %v", s, err)
	}
	c.writeHeader(5)
	c.writeArg([]byte("MGET"))
	for _, k := range []uint64{2, 99, 0, 1} {
		c.writeArg(redisKey(nil, k))
	}
	if err := c.flush(); err != nil {
		t.Fatal(err)
	}
	var got []string
	n, err := c.readArray(func(_ int, v []byte, ok bool) {
		if ok {
			got = append(got, string(v))
		} else {
			got = append(got, "<nil>")
		}
	})
	want := []string{"v2\r\n", "<nil>", "v0\r\n", "v1\r\n"}
	if err != nil || n != 4 || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("MGET = %q (%d), %v; want %q", got, n, err, want)
	}
	if _, err := c.do("NOSUCHCOMMAND"); err == nil {
		t.Fatal("error reply not reported")
	}
	if s, err := c.do("PING"); err != nil || s != "PONG" {
		t.Fatalf("connection unusable after an error reply: %q %v", s, err)
	}
	if v := redisVersion(srv.addr); v == "?" {
		t.Fatal("no version")
	}
}
