package dashboard

import (
	"bufio"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestStreamOutlivesReadTimeout holds an event stream open for several read
// timeouts: the server's ReadTimeout must not cut it.
func TestStreamOutlivesReadTimeout(t *testing.T) {
	old := readTimeout
	readTimeout = 300 * time.Millisecond
	defer func() { readTimeout = old }()
	srv, err := Start(Options{Hub: NewHub(HubOptions{})})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		_ = srv.Close(ctx)
	}()
	req, _ := http.NewRequest("GET", "http://"+srv.Addr()+"/api/events", nil)
	req.Header.Set("Authorization", "Bearer "+srv.Token())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	began, totals := time.Now(), 0
	for totals < 3 && sc.Scan() {
		if strings.HasPrefix(sc.Text(), "event: totals") {
			totals++
		}
	}
	if totals < 3 {
		t.Fatalf("stream ended after %s and %d totals messages (%v); the read timeout is %s", time.Since(began).Round(time.Millisecond), totals, sc.Err(), readTimeout)
	}
}
