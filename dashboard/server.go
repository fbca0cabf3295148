// Package dashboard is the control plane of a running apply and its web dashboard:
// an HTTP server, on loopback and protected by the run's token, that reports the
// stages, trials and totals of the apply (GET /api/status, a live server-sent event
// stream at GET /api/events), kills trials through the executor's Router (POST
// /api/trials/kill, /api/trials/kill-all), and serves a one-page dashboard from
// assets embedded in the binary. A Hub follows the apply as one of its Observers;
// .stratus/control.json tells `stratus trials` and `stratus ui` where the server of
// the running apply is. LoadState builds a Hub from the state of a finished apply.
package dashboard

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/stratus-ml/stratus/executor"
	"github.com/stratus-ml/stratus/operators"
)

// DefaultAddr is where a server listens when given no address: loopback, a port the
// kernel picks.
const DefaultAddr = "127.0.0.1:0"

// readTimeout bounds reading a request, body included. It does not cut event
// streams, which stay open as long as the apply runs: net/http lifts the read
// deadline once a request has been read (TestStreamOutlivesReadTimeout holds it to
// that).
var readTimeout = 10 * time.Second

// Options configure a Server.
type Options struct {
	// Addr is host:port to listen on; "" means DefaultAddr.
	Addr string
	// AllowRemote permits a non-loopback address. Anyone who can reach it and has the
	// token can watch the apply and kill its trials; without it Start refuses such an
	// address.
	AllowRemote bool
	// Token authenticates every request; "" makes a fresh one (NewToken).
	Token string
	// Hub is what the server reports.
	Hub *Hub
	// Router delivers kill commands to running stages; nil (a finished apply) makes
	// kill requests fail with 409.
	Router *executor.Router
	// Logf reports warnings (a remote bind); nil discards them.
	Logf func(format string, args ...any)
}

// Server is a running control and dashboard server.
type Server struct {
	hub    *Hub
	router *executor.Router
	token  string
	cookie string
	remote bool
	addr   string
	ln     net.Listener
	srv    *http.Server

	closeOnce sync.Once
	closeErr  error
	served    chan struct{} // closed when Serve returned
}

// Start listens on o.Addr and serves in a goroutine that Close stops and waits for.
func Start(o Options) (*Server, error) {
	if o.Hub == nil {
		return nil, errors.New("dashboard: no hub")
	}
	addr := o.Addr
	if addr == "" {
		addr = DefaultAddr
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("listen address %q: want host:port, such as 127.0.0.1:8080: %w", addr, err)
	}
	loop := isLoopbackHost(host)
	if !loop && !o.AllowRemote {
		return nil, fmt.Errorf("refusing to serve the dashboard on %s: it is not a loopback address, so other machines could reach it. Use 127.0.0.1:PORT, or allow it explicitly (-allow-remote) if you mean to", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("dashboard: %w", err)
	}
	if !loop && o.Logf != nil {
		o.Logf("Warning: the dashboard listens on %s, beyond loopback: anyone who can reach it with the token can watch this apply and kill its trials. The connection is not encrypted.", ln.Addr())
	}
	s := &Server{
		hub: o.Hub, router: o.Router, token: o.Token, remote: !loop,
		addr: ln.Addr().String(), ln: ln, served: make(chan struct{}),
	}
	if s.token == "" {
		s.token = NewToken()
	}
	s.cookie = cookieName(s.addr)
	s.srv = &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       readTimeout,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          nil,
	}
	go func() {
		defer close(s.served)
		_ = s.srv.Serve(ln)
	}()
	return s, nil
}

// Addr is the address the server listens on (host:port, the port resolved).
func (s *Server) Addr() string { return s.addr }

// Token is the token every request must carry.
func (s *Server) Token() string { return s.token }

// URL is the dashboard's address with the token, to open in a browser. A wildcard
// listen address is shown as 127.0.0.1.
func (s *Server) URL() string {
	return "http://" + dialAddr(s.addr) + "/?token=" + url.QueryEscape(s.token)
}

// dialAddr turns a wildcard listen address into one a client can dial.
func dialAddr(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// Close ends the event streams (each gets its pending messages and an "end"
// message), lets in-flight requests finish until ctx is done, then closes every
// connection and waits for the server's goroutine.
func (s *Server) Close(ctx context.Context) error {
	s.closeOnce.Do(func() {
		s.hub.Close()
		if err := s.srv.Shutdown(ctx); err != nil {
			s.closeErr = s.srv.Close()
		}
		<-s.served
	})
	return s.closeErr
}

// Handler returns the server's routes, every one behind the token check.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	assets := Assets()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		b, err := fs.ReadFile(assets, "index.html")
		if err != nil {
			httpError(w, http.StatusInternalServerError, "dashboard assets missing from this build")
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write(b)
	})
	mux.Handle("GET /assets/", http.StripPrefix("/assets/", http.FileServerFS(assets)))
	mux.HandleFunc("GET /api/status", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, s.hub.Status())
	})
	mux.HandleFunc("GET /api/curves", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, s.hub.Curves())
	})
	mux.HandleFunc("GET /api/events", s.events)
	mux.HandleFunc("POST /api/trials/kill", s.kill)
	mux.HandleFunc("POST /api/trials/kill-all", s.killAll)
	return s.guard(mux)
}

// events streams the hub's messages as server-sent events: a snapshot first, then
// every change, and the totals each second.
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	sub, snap, err := s.hub.subscribe()
	if err != nil {
		httpError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	defer s.hub.unsubscribe(sub)
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	write := func(b []byte) bool {
		_ = rc.SetWriteDeadline(time.Now().Add(10 * time.Second))
		_, err := w.Write(b)
		return err == nil
	}
	if !write([]byte("retry: 2000\n\n")) || !write(snap) || rc.Flush() != nil {
		return
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case f, ok := <-sub.ch:
			if !ok {
				return
			}
			if !write(f) {
				return
			}
			// Write what else is queued before flushing once.
			for more := true; more; {
				select {
				case f, ok := <-sub.ch:
					if !ok {
						_ = rc.Flush()
						return
					}
					if !write(f) {
						return
					}
				default:
					more = false
				}
			}
		case <-tick.C:
			f, err := frame("totals", s.hub.Totals())
			if err != nil || !write(f) {
				return
			}
		}
		if rc.Flush() != nil {
			return
		}
	}
}

// KillRequest is the body of POST /api/trials/kill and /api/trials/kill-all.
type KillRequest struct {
	// Stage is the grid_search stage; for kill it may be left out when the trial ID
	// is unique in the apply. For kill-all, "" means every running stage with trials.
	Stage string `json:"stage,omitempty"`
	Trial string `json:"trial,omitempty"`
}

// KillResult is the answer to a kill: one entry per stage that was asked.
type KillResult struct {
	Stage string `json:"stage"`
	Trial string `json:"trial,omitempty"`
	Error string `json:"error,omitempty"`
}

// KillResponse is the body of a successful kill or kill-all.
type KillResponse struct {
	Results []KillResult `json:"results"`
}

func (s *Server) kill(w http.ResponseWriter, r *http.Request) {
	var req KillRequest
	if !readJSON(w, r, &req) {
		return
	}
	if req.Trial == "" {
		httpError(w, http.StatusBadRequest, `name the trial: {"stage": "grid_search.tune", "trial": "t-…"}`)
		return
	}
	if s.router == nil {
		httpError(w, http.StatusConflict, "this apply has finished: there is nothing to kill")
		return
	}
	stage := req.Stage
	if stage == "" {
		t := s.hub.Trial("", req.Trial)
		if t == nil {
			httpError(w, http.StatusNotFound, fmt.Sprintf("no trial %q in this apply", req.Trial))
			return
		}
		stage = t.Stage
	}
	switch st := s.hub.StageStatus(stage); st {
	case "":
		httpError(w, http.StatusNotFound, fmt.Sprintf("no stage %q in this apply", stage))
		return
	case StageRunning:
	default:
		httpError(w, http.StatusConflict, fmt.Sprintf("stage %s is not running (it is %s)", stage, st))
		return
	}
	t := s.hub.Trial(stage, req.Trial)
	if t == nil {
		httpError(w, http.StatusNotFound, fmt.Sprintf("no trial %q in %s", req.Trial, stage))
		return
	}
	if t.Status.Terminal() {
		httpError(w, http.StatusConflict, fmt.Sprintf("trial %s of %s is already %s", t.ID, stage, t.Status))
		return
	}
	if err := s.router.Send(r.Context(), stage, operators.Command{Op: "kill", Target: req.Trial}); err != nil {
		httpError(w, sendStatus(err), err.Error())
		return
	}
	writeJSON(w, http.StatusOK, KillResponse{Results: []KillResult{{Stage: stage, Trial: req.Trial}}})
}

func (s *Server) killAll(w http.ResponseWriter, r *http.Request) {
	var req KillRequest
	if !readJSON(w, r, &req) {
		return
	}
	if s.router == nil {
		httpError(w, http.StatusConflict, "this apply has finished: there is nothing to kill")
		return
	}
	var stages []string
	if req.Stage != "" {
		switch st := s.hub.StageStatus(req.Stage); st {
		case "":
			httpError(w, http.StatusNotFound, fmt.Sprintf("no stage %q in this apply", req.Stage))
			return
		case StageRunning:
			stages = []string{req.Stage}
		default:
			httpError(w, http.StatusConflict, fmt.Sprintf("stage %s is not running (it is %s)", req.Stage, st))
			return
		}
	} else {
		running := map[string]bool{}
		for _, a := range s.router.Running() {
			running[a] = true
		}
		for _, a := range s.hub.TrialStages() {
			if running[a] {
				stages = append(stages, a)
			}
		}
		if len(stages) == 0 {
			httpError(w, http.StatusConflict, "no running stage has trials")
			return
		}
	}
	resp := KillResponse{}
	failed := 0
	for _, a := range stages {
		res := KillResult{Stage: a}
		if err := s.router.Send(r.Context(), a, operators.Command{Op: "kill-all"}); err != nil {
			res.Error = err.Error()
			failed++
		}
		resp.Results = append(resp.Results, res)
	}
	code := http.StatusOK
	if failed == len(stages) {
		code = http.StatusConflict
	}
	writeJSON(w, code, resp)
}

// sendStatus maps a Router.Send error to an HTTP status: a stage that did not answer
// in time is a gateway timeout; a refusal (no such trial, already finished) a conflict.
func sendStatus(err error) int {
	if errors.Is(err, context.DeadlineExceeded) {
		return http.StatusGatewayTimeout
	}
	return http.StatusConflict
}

// apiError is the body of every error response.
type apiError struct {
	Error string `json:"error"`
}

func httpError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, apiError{Error: msg})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		code, b = http.StatusInternalServerError, []byte(`{"error":"encode response"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
}

// readJSON decodes a small request body into v, answering 400 when it cannot.
func readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	b, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	if err != nil {
		httpError(w, http.StatusBadRequest, "read request: "+err.Error())
		return false
	}
	if len(b) == 0 {
		return true
	}
	if err := json.Unmarshal(b, v); err != nil {
		httpError(w, http.StatusBadRequest, "request body is not the JSON expected: "+err.Error())
		return false
	}
	return true
}
