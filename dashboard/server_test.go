package dashboard_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net/http"
	"net/http/cookiejar"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stratus-ml/stratus/dashboard"
	"github.com/stratus-ml/stratus/executor"
	"github.com/stratus-ml/stratus/operators"
)

// feed sends a stage with two trials and a few evaluation points to h.
func feed(h *dashboard.Hub, now time.Time) {
	h.Event(executor.Event{Time: now, Type: executor.ApplyStarted, Tasks: 1})
	h.Event(executor.Event{Time: now, Type: executor.StageStarted, Stage: "grid_search.secret_stage", Operator: "grid_search"})
	for i, id := range []string{"t-aaaa0001", "t-bbbb0002"} {
		h.Event(executor.Event{Time: now, Type: executor.StageEvent, Stage: "grid_search.secret_stage", Kind: "trial",
			Labels:  map[string]string{"trial": id, "status": "RUNNING", "params": `{"learning_rate":0.1}`},
			Metrics: map[string]float64{"updates_per_second": float64(10 * (i + 1))}})
		for k := 1; k <= 3; k++ {
			h.Event(executor.Event{Time: now.Add(time.Duration(k) * time.Second), Type: executor.StageEvent, Stage: "grid_search.secret_stage", Kind: "metric",
				Labels: map[string]string{"trial": id}, Metrics: map[string]float64{"test_logloss": 0.7 - 0.1*float64(k), "t": float64(k)}})
		}
	}
}

func startHubServer(t *testing.T, o dashboard.Options) *dashboard.Server {
	t.Helper()
	if o.Hub == nil {
		o.Hub = dashboard.NewHub(dashboard.HubOptions{})
		feed(o.Hub, time.Now())
	}
	srv, err := dashboard.Start(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		if err := srv.Close(ctx); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return srv
}

func TestAuthRefusal(t *testing.T) {
	srv := startHubServer(t, dashboard.Options{})
	routes := []struct{ method, path, body string }{
		{"GET", "/", ""},
		{"GET", "/assets/app.js", ""},
		{"GET", "/api/status", ""},
		{"GET", "/api/curves", ""},
		{"GET", "/api/events", ""},
		{"POST", "/api/trials/kill", `{"trial":"t-aaaa0001"}`},
		{"POST", "/api/trials/kill-all", `{}`},
		{"GET", "/nonexistent", ""},
	}
	secrets := []string{srv.Token(), "t-aaaa0001", "secret_stage", "learning_rate"}
	for _, tok := range []struct{ name, header string }{
		{"no token", ""},
		{"wrong token", "Bearer " + strings.Repeat("0", len(srv.Token()))},
		{"token prefix", "Bearer " + srv.Token()[:10]},
		{"not bearer", "Basic " + srv.Token()},
		{"token with suffix", "Bearer " + srv.Token() + "x"},
	} {
		for _, rt := range routes {
			t.Run(tok.name+" "+rt.method+" "+rt.path, func(t *testing.T) {
				req, _ := http.NewRequest(rt.method, "http://"+srv.Addr()+rt.path, strings.NewReader(rt.body))
				if tok.header != "" {
					req.Header.Set("Authorization", tok.header)
				}
				req.Header.Set("Content-Type", "application/json")
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusUnauthorized {
					t.Fatalf("status %d, want 401", resp.StatusCode)
				}
				for _, s := range secrets {
					if strings.Contains(string(b), s) {
						t.Errorf("401 body leaks %q: %s", s, b)
					}
				}
				if len(resp.Cookies()) > 0 {
					t.Errorf("401 sets cookies %v", resp.Cookies())
				}
			})
		}
	}
	t.Run("wrong token in URL", func(t *testing.T) {
		resp, err := http.Get("http://" + srv.Addr() + "/?token=nope")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized || len(resp.Cookies()) > 0 {
			t.Errorf("status %d cookies %v, want 401 and none", resp.StatusCode, resp.Cookies())
		}
	})
	t.Run("bearer", func(t *testing.T) {
		var s dashboard.Status
		if code := call(t, srv, "GET", "/api/status", "", srv.Token(), &s); code != 200 {
			t.Fatalf("status %d", code)
		}
		if len(s.Trials) != 2 {
			t.Errorf("trials %+v", s.Trials)
		}
	})
	t.Run("foreign Host header", func(t *testing.T) {
		// A DNS-rebinding page reaches 127.0.0.1 under its own host name.
		req, _ := http.NewRequest("GET", "http://"+srv.Addr()+"/api/status", nil)
		req.Host = "attacker.example:80"
		req.Header.Set("Authorization", "Bearer "+srv.Token())
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("status %d, want 403", resp.StatusCode)
		}
	})
}

// TestCookieExchange follows the browser's path: the URL with the token sets an
// HttpOnly cookie and redirects to a URL without it; the cookie then authenticates
// page, assets and API, and POSTs need JSON from the same origin.
func TestCookieExchange(t *testing.T) {
	srv := startHubServer(t, dashboard.Options{})
	jar, _ := cookiejar.New(nil)
	var redirects []string
	hc := &http.Client{Jar: jar, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		redirects = append(redirects, req.URL.String())
		return nil
	}}
	resp, err := hc.Get(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(page), "/assets/app.js") {
		t.Fatalf("page: %d %s", resp.StatusCode, page)
	}
	if len(redirects) != 1 || strings.Contains(redirects[0], "token") {
		t.Errorf("redirects %v: want one, to a URL without the token", redirects)
	}
	for _, p := range []string{"/assets/app.js", "/assets/app.css", "/api/status"} {
		resp, err := hc.Get("http://" + srv.Addr() + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("GET %s with the cookie: %d", p, resp.StatusCode)
		}
	}
	post := func(origin, ctype string) int {
		req, _ := http.NewRequest("POST", "http://"+srv.Addr()+"/api/trials/kill", strings.NewReader(`{"trial":"t-aaaa0001"}`))
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if c := post("http://127.0.0.1:1", "application/json"); c != http.StatusForbidden {
		t.Errorf("cross-origin POST: %d, want 403", c)
	}
	if c := post("", "application/x-www-form-urlencoded"); c != http.StatusUnsupportedMediaType {
		t.Errorf("form POST: %d, want 415", c)
	}
	// Same origin and JSON reach the handler: no router here, so 409.
	if c := post("http://"+srv.Addr(), "application/json"); c != http.StatusConflict {
		t.Errorf("same-origin POST: %d, want 409 (finished apply)", c)
	}
}

func TestRefusesNonLoopback(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", ":0", "[::]:0"} {
		_, err := dashboard.Start(dashboard.Options{Addr: addr, Hub: dashboard.NewHub(dashboard.HubOptions{})})
		if err == nil || !strings.Contains(err.Error(), "not a loopback address") {
			t.Errorf("Start(%q) = %v, want a refusal", addr, err)
		}
	}
	var warned string
	srv := startHubServer(t, dashboard.Options{Addr: "0.0.0.0:0", AllowRemote: true, Logf: func(f string, a ...any) { warned = f }})
	if !strings.Contains(warned, "Warning") {
		t.Errorf("no warning for a remote bind: %q", warned)
	}
	if !strings.HasPrefix(srv.URL(), "http://127.0.0.1:") {
		t.Errorf("URL %s should dial loopback", srv.URL())
	}
	if _, err := dashboard.Start(dashboard.Options{Addr: "nonsense", Hub: dashboard.NewHub(dashboard.HubOptions{})}); err == nil {
		t.Error("Start accepted an address without a port")
	}
}

// sse reads a server-sent event stream in a goroutine that ends with the body.
type sse struct {
	msgs chan [2]string
	body io.Closer
}

func openSSE(t *testing.T, srv *dashboard.Server) *sse {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+srv.Addr()+"/api/events", nil)
	req.Header.Set("Authorization", "Bearer "+srv.Token())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("events: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	s := &sse{msgs: make(chan [2]string, 1024), body: resp.Body}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(s.msgs)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 16<<20)
		var kind, data string
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "event: "):
				kind = line[len("event: "):]
			case strings.HasPrefix(line, "data: "):
				data = line[len("data: "):]
			case line == "" && kind != "":
				s.msgs <- [2]string{kind, data}
				kind, data = "", ""
			}
		}
	}()
	t.Cleanup(func() { resp.Body.Close(); <-done })
	return s
}

// next returns the next message of a kind, skipping others; ok is false at the end
// of the stream.
func (s *sse) next(t *testing.T, kind string) (data string, ok bool) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case m, open := <-s.msgs:
			if !open {
				return "", false
			}
			if m[0] == kind {
				return m[1], true
			}
		case <-timeout:
			t.Fatalf("no %q message in 10s", kind)
		}
	}
}

func TestEventsReplay(t *testing.T) {
	hub := dashboard.NewHub(dashboard.HubOptions{})
	now := time.Now()
	feed(hub, now)
	srv := startHubServer(t, dashboard.Options{Hub: hub})

	a := openSSE(t, srv)
	first := <-a.msgs
	if first[0] != "snapshot" {
		t.Fatalf("first message %q, want snapshot", first[0])
	}
	var snap dashboard.Snapshot
	if err := json.Unmarshal([]byte(first[1]), &snap); err != nil {
		t.Fatal(err)
	}
	if len(snap.Status.Trials) != 2 || len(snap.Curves) != 2 || len(snap.Curves[0].Points) != 3 {
		t.Fatalf("snapshot: %d trials, %d curves", len(snap.Status.Trials), len(snap.Curves))
	}

	// A live event reaches the open stream, as a point and as the executor's event.
	hub.Event(executor.Event{Time: now.Add(4 * time.Second), Type: executor.StageEvent, Stage: "grid_search.secret_stage", Kind: "metric",
		Labels: map[string]string{"trial": "t-aaaa0001"}, Metrics: map[string]float64{"test_logloss": math.NaN(), "t": 4}})
	data, _ := a.next(t, "point")
	var pm struct {
		Stage, Trial string
		Point        dashboard.Point
	}
	if err := json.Unmarshal([]byte(data), &pm); err != nil {
		t.Fatal(err)
	}
	if pm.Trial != "t-aaaa0001" || pm.Point.T != 4 || pm.Point.Loss != nil {
		t.Errorf("point %+v: want trial t-aaaa0001 at t=4 with a null (NaN) loss", pm)
	}
	data, _ = a.next(t, "event")
	if !strings.Contains(data, `"test_logloss":null`) {
		t.Errorf("executor event should carry NaN as null: %s", data)
	}
	if _, ok := a.next(t, "totals"); !ok {
		t.Error("no totals")
	}

	// A later connection's snapshot replays it.
	b := openSSE(t, srv)
	first = <-b.msgs
	if err := json.Unmarshal([]byte(first[1]), &snap); err != nil {
		t.Fatal(err)
	}
	for _, c := range snap.Curves {
		if c.Trial == "t-aaaa0001" && len(c.Points) != 4 {
			t.Errorf("replayed curve has %d points, want 4", len(c.Points))
		}
	}

	// Closing the server ends both streams with "end".
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := srv.Close(ctx); err != nil {
		t.Fatal(err)
	}
	for _, s := range []*sse{a, b} {
		if _, ok := s.next(t, "end"); !ok {
			t.Error("stream ended without an end message")
		}
		if _, ok := s.next(t, "never"); ok {
			t.Error("stream still open after end")
		}
	}
	if hub.Subscribers() != 0 {
		t.Errorf("%d subscribers left", hub.Subscribers())
	}
}

func TestKillRouting(t *testing.T) {
	r := startRun(t, `
test_map "prep" {
  tasks = 1
}
test_trials "search" {
  trials   = 3
  points   = 400
  interval = "50ms"
  after    = test_map.prep.sum
}
`, "")
	var st dashboard.Status
	eventually(t, 20*time.Second, "3 running trials", func() bool {
		st = dashboard.Status{}
		r.api("GET", "/api/status", "", &st)
		n := 0
		for _, tr := range st.Trials {
			if tr.Status == operators.TrialRunning {
				n++
			}
		}
		return n == 3
	})
	victim := st.Trials[1].ID
	for _, tc := range []struct {
		name, body string
		code       int
		msg        string
	}{
		{"no trial", `{}`, 400, "name the trial"},
		{"bad json", `{"trial":`, 400, "not the JSON"},
		{"unknown trial", `{"trial":"t-00000000"}`, 404, `no trial "t-00000000" in this apply`},
		{"unknown trial of stage", `{"stage":"test_trials.search","trial":"t-00000000"}`, 404, `no trial "t-00000000" in test_trials.search`},
		{"unknown stage", `{"stage":"grid_search.nope","trial":"` + victim + `"}`, 404, `no stage "grid_search.nope"`},
		{"stage not running", `{"stage":"test_map.prep","trial":"` + victim + `"}`, 409, "stage test_map.prep is not running (it is done)"},
		{"kill", `{"trial":"` + victim + `"}`, 200, ""},
		{"kill again", `{"stage":"test_trials.search","trial":"` + victim + `"}`, 409, "already KILLED"},
	} {
		var resp struct {
			Error   string
			Results []dashboard.KillResult
		}
		code := r.api("POST", "/api/trials/kill", tc.body, &resp)
		if code != tc.code || !strings.Contains(resp.Error, tc.msg) {
			t.Errorf("%s: %d %q, want %d %q", tc.name, code, resp.Error, tc.code, tc.msg)
		}
		if tc.code == 200 && (len(resp.Results) != 1 || resp.Results[0].Stage != "test_trials.search") {
			t.Errorf("%s: results %+v", tc.name, resp.Results)
		}
	}
	if got := trialsOf(r.hub.Status())[victim].Status; got != operators.TrialKilled {
		t.Errorf("killed trial is %s in the status", got)
	}
	var resp dashboard.KillResponse
	if code := r.api("POST", "/api/trials/kill-all", `{"stage":"test_map.prep"}`, nil); code != 409 {
		t.Errorf("kill-all of a finished stage: %d, want 409", code)
	}
	if code := r.api("POST", "/api/trials/kill-all", `{}`, &resp); code != 200 || len(resp.Results) != 1 || resp.Results[0].Error != "" {
		t.Fatalf("kill-all: %d %+v", code, resp)
	}
	r.wait()
	for id, s := range recordedStatus(t, r.st, "test_trials.search") {
		if s != operators.TrialKilled {
			t.Errorf("trial %s recorded %s, want KILLED", id, s)
		}
	}
	if code := r.api("POST", "/api/trials/kill", `{"trial":"`+victim+`"}`, nil); code != 409 {
		t.Errorf("kill after the stage finished: %d, want 409", code)
	}
	if s := r.hub.Status(); s.Run.State != "done" || s.Run.CanKill || s.Totals.ActiveFunctions != 0 || s.Totals.CostUSD <= 0 {
		t.Errorf("after the apply: run %+v totals %+v", s.Run, s.Totals)
	}
}

func TestControlFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), ".stratus")
	if _, err := dashboard.ReadControl(dir); !errors.Is(err, dashboard.ErrNotRunning) {
		t.Fatalf("no file: %v, want ErrNotRunning", err)
	}
	srv := startHubServer(t, dashboard.Options{})
	started := time.Now()
	remove, err := srv.Publish(dir, os.Getpid(), started)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, dashboard.ControlFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	c, err := dashboard.ReadControl(dir)
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr != srv.Addr() || c.Token != srv.Token() || c.PID != os.Getpid() || !c.Started.Equal(started) {
		t.Errorf("control %+v", c)
	}
	cl, err := dashboard.Connect(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	s, err := cl.Status(context.Background())
	if err != nil || len(s.Trials) != 2 {
		t.Fatalf("status through the client: %v %+v", err, s)
	}
	_, err = cl.Kill(context.Background(), "", "t-aaaa0001")
	var ae *dashboard.APIError
	if !errors.As(err, &ae) || ae.Status != 409 {
		t.Errorf("kill without a router: %v, want a 409 APIError", err)
	}
	// Another apply's token: left alone.
	if err := dashboard.RemoveControl(dir, "someone-else"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, dashboard.ControlFile)); err != nil {
		t.Fatal("RemoveControl removed another token's file")
	}
	if err := remove(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, dashboard.ControlFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("control file still there after remove: %v", err)
	}
	if err := remove(); err != nil {
		t.Errorf("second remove: %v", err)
	}

	// A file left by a process that died is not a running apply.
	if err := dashboard.WriteControl(dir, dashboard.Control{Addr: srv.Addr(), Token: "x", PID: deadPID(t)}); err != nil {
		t.Fatal(err)
	}
	if _, err := dashboard.ReadControl(dir); !errors.Is(err, dashboard.ErrNotRunning) || !strings.Contains(err.Error(), "is gone") {
		t.Errorf("stale file: %v", err)
	}
	// A damaged one says so.
	if err := os.WriteFile(filepath.Join(dir, dashboard.ControlFile), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := dashboard.ReadControl(dir); err == nil || !strings.Contains(err.Error(), "damaged") {
		t.Errorf("damaged file: %v", err)
	}
}

// deadPID returns the PID of a process that has exited.
func deadPID(t *testing.T) int {
	t.Helper()
	p, err := os.StartProcess("/bin/true", []string{"true"}, &os.ProcAttr{})
	if err != nil {
		t.Skip("cannot start /bin/true:", err)
	}
	if _, err := p.Wait(); err != nil {
		t.Fatal(err)
	}
	return p.Pid
}
