package testtools

import (
	"fmt"
	"net"
	"testing"
	"time"
)

// FreeAddr returns a 127.0.0.1:PORT that was free a moment ago, for a server a
// test starts.
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// WaitTCP waits until addr accepts connections. It returns an error when done
// closes first (the serving process exited) or after timeout.
func WaitTCP(addr string, done <-chan struct{}, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			return c.Close()
		}
		select {
		case <-done:
			return fmt.Errorf("the process serving %s exited", addr)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s does not accept connections: %w", addr, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
