package dashboard_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stratus-ml/stratus/dashboard"
	"github.com/stratus-ml/stratus/dsl"
	"github.com/stratus-ml/stratus/executor"
	"github.com/stratus-ml/stratus/executor/local"
	"github.com/stratus-ml/stratus/executor/testops"
	"github.com/stratus-ml/stratus/operators"
	"github.com/stratus-ml/stratus/operators/taskenv"
	"github.com/stratus-ml/stratus/planner"
	"github.com/stratus-ml/stratus/state"
)

// run is an apply running in the background with its control server, as
// `stratus apply` runs one.
type run struct {
	t      *testing.T
	dir    string
	st     *state.Store
	hub    *dashboard.Hub
	srv    *dashboard.Server
	router *executor.Router

	done chan struct{}
	sum  *executor.Summary
	err  error
}

// startRun writes src as a pipeline, plans it, starts its control server on addr
// and applies it in a goroutine. Cleanup waits for the apply and closes everything.
func startRun(t *testing.T, src, addr string) *run {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "main.hcl"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	st, err := state.Open(filepath.Join(dir, ".stratus", "state"))
	if err != nil {
		t.Fatal(err)
	}
	reg := testops.Registry()
	cfg, diags := dsl.Load(dir, dsl.LoadOptions{Registry: reg})
	if diags.HasErrors() {
		t.Fatalf("load: %s", diags.Error())
	}
	p, diags := planner.Build(context.Background(), cfg, planner.Options{State: st})
	if diags.HasErrors() {
		t.Fatalf("plan: %s", diags.Error())
	}
	r := &run{t: t, dir: dir, st: st, router: executor.NewRouter(), done: make(chan struct{})}
	r.hub = dashboard.NewHub(dashboard.HubOptions{Plan: p, Run: dashboard.RunInfo{Dir: dir, PID: os.Getpid(), Started: time.Now(), CanKill: true}})
	r.srv, err = dashboard.Start(dashboard.Options{Addr: addr, Hub: r.hub, Router: r.router})
	if err != nil {
		t.Fatal(err)
	}
	be := local.New(reg, taskenv.New(), local.Options{MaxConcurrency: 8})
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		defer close(r.done)
		defer be.Close()
		r.sum, r.err = executor.Apply(ctx, executor.Options{
			Plan: p, State: st, Backend: be, Registry: reg, Observer: r.hub, Router: r.router,
			TaskEnv: operators.TaskEnv{Blob: "file://" + filepath.Join(dir, ".stratus", "blobs")},
			Retries: 1, TaskTimeout: time.Minute, Lifetime: time.Minute, RetryBackoff: time.Millisecond,
		})
	}()
	t.Cleanup(func() {
		cancel()
		<-r.done
		cctx, ccancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer ccancel()
		_ = r.srv.Close(cctx)
		st.Close()
	})
	return r
}

// wait waits for the apply to finish and fails the test if it failed.
func (r *run) wait() *executor.Summary {
	r.t.Helper()
	select {
	case <-r.done:
	case <-time.After(2 * time.Minute):
		r.t.Fatal("apply did not finish in 2 minutes")
	}
	if r.err != nil {
		r.t.Fatalf("apply: %v", r.err)
	}
	return r.sum
}

// eventually polls cond every 20ms until it holds or d passes.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// api calls the server with the token and decodes the JSON answer into out.
func (r *run) api(method, path, body string, out any) int {
	r.t.Helper()
	return call(r.t, r.srv, method, path, body, r.srv.Token(), out)
}

func call(t *testing.T, srv *dashboard.Server, method, path, body, token string, out any) int {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, "http://"+srv.Addr()+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatalf("%s %s: decode: %v", method, path, err)
		}
	}
	return resp.StatusCode
}

// trialsOf returns the trials of a status by ID.
func trialsOf(s dashboard.Status) map[string]*dashboard.Trial {
	m := map[string]*dashboard.Trial{}
	for _, t := range s.Trials {
		m[t.ID] = t
	}
	return m
}

// recordedStatus returns the last status each trial of stage has in the state's
// series.
func recordedStatus(t *testing.T, st *state.Store, stage string) map[string]operators.TrialStatus {
	t.Helper()
	pts, err := st.Series(stage)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]operators.TrialStatus{}
	for _, p := range pts {
		var e operators.Event
		if err := json.Unmarshal(p, &e); err != nil {
			t.Fatal(err)
		}
		if te, ok := operators.DecodeTrial(e); ok {
			out[te.ID] = te.Status
		}
	}
	return out
}
