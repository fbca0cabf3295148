package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/stratus-ml/stratus/dashboard"
	"github.com/stratus-ml/stratus/executor"
	"github.com/stratus-ml/stratus/executor/runtime"
	"github.com/stratus-ml/stratus/planner"
	"github.com/stratus-ml/stratus/state"
)

// closeGrace bounds how long a stopping dashboard server waits for requests in
// flight (a browser fetching the final state).
const closeGrace = 3 * time.Second

func (c *cli) uiCmd() *cobra.Command {
	var addr string
	var allowRemote bool
	cmd := &cobra.Command{
		Use:   "ui [DIR]",
		Short: "Serve the web dashboard of a pipeline's last apply",
		Example: `  stratus ui pipelines/a9a-tune
  stratus ui -addr 127.0.0.1:0`,
		Long: `ui serves the dashboard of the pipeline in DIR (default ".") for its last apply,
read from the state: the stage graph, each recorded trial and its loss curves, and the
cost. It serves until Ctrl-C; restart it to see a later apply.

When an apply of the pipeline is running, ui prints the address of that apply's own
dashboard instead, which is live and can kill trials (every apply serves one; use
apply -ui ADDR to choose its address).

The server listens on loopback and needs a token: open the URL ui prints.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.ui(cmd.Context(), dirArg(args), addr, allowRemote)
		},
	}
	cmd.Flags().StringVar(&addr, "addr", "127.0.0.1:8080", "listen on `ADDR` (host:port; port 0 picks a free one)")
	cmd.Flags().BoolVar(&allowRemote, "allow-remote", false, "allow a non-loopback -addr (anyone who can reach it with the token can read the results)")
	return cmd
}

func (c *cli) ui(parent context.Context, dir, addr string, allowRemote bool) error {
	if parent == nil {
		parent = context.Background()
	}
	ctl, err := dashboard.ReadControl(stateDir(dir))
	switch {
	case err == nil:
		fmt.Fprintf(c.stdout, "An apply of this pipeline is running (pid %d, since %s). Its dashboard:\n\n  %s\n",
			ctl.PID, ctl.Started.Local().Format(time.DateTime), ctl.URL())
		return nil
	case !errors.Is(err, dashboard.ErrNotRunning):
		return err
	}
	st, err := openState(dir)
	if err != nil {
		return err
	}
	if st == nil {
		return fmt.Errorf("no state in %s: the pipeline has not been applied (run `stratus apply -ui 127.0.0.1:8080` to watch an apply)", stateDir(dir))
	}
	hub, err := dashboard.LoadState(st, dashboard.RunInfo{Dir: absDir(dir)})
	// Close at once: holding the state would lock out the next apply.
	if cerr := st.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	srv, err := dashboard.Start(dashboard.Options{Addr: addr, AllowRemote: allowRemote, Hub: hub, Logf: c.warnf})
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "Serving the dashboard of the last apply of %s (read from its state) at\n\n  %s\n\nPress Ctrl-C to stop.\n", absDir(dir), srv.URL())
	ctx, stop := signal.NotifyContext(parent, os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	cctx, cancel := context.WithTimeout(context.Background(), closeGrace)
	defer cancel()
	return srv.Close(cctx)
}

func (c *cli) warnf(format string, args ...any) {
	fmt.Fprintf(c.stderr, format+"\n", args...)
}

// controlPlane is the control and dashboard server of a running apply: every apply
// has one (on a random loopback port unless -ui names an address), announced in
// .stratus/control.json for `stratus trials` and `stratus ui`.
type controlPlane struct {
	srv       *dashboard.Server
	hub       *dashboard.Hub
	unpublish func() error
}

// startControl starts the apply's control server before executor.Apply. With an
// explicit address (-ui) a failure is an error and the dashboard's URL is printed
// to w; without one, a failure is a warning and the apply runs without it.
func (c *cli) startControl(w io.Writer, dir string, p *planner.Plan, st *state.Store, router *executor.Router, rt *runtime.Runtime, addr string, allowRemote bool) (*controlPlane, error) {
	started := time.Now()
	hub := dashboard.NewHub(dashboard.HubOptions{
		Plan:     p,
		Pricing:  rt.Pricing,
		MemoryMB: rt.MemoryMB,
		Run:      dashboard.RunInfo{Mode: "live", Dir: absDir(dir), PID: os.Getpid(), Started: started, CanKill: true},
	})
	// Cached stages show the trials and curves of the run that produced them.
	for _, sp := range p.Stages {
		if sp.Action == planner.Cached && sp.Prior != nil {
			_ = dashboard.ReplaySeries(hub, st, sp.Prior.Address, sp.Address, sp.Prior.Started, sp.Prior.Finished)
		}
	}
	fail := func(err error) (*controlPlane, error) {
		if addr != "" {
			return nil, fmt.Errorf("-ui: %w", err)
		}
		c.warnf("Warning: no control endpoint for this apply (stratus trials and ui will not reach it): %s", err)
		return nil, nil
	}
	srv, err := dashboard.Start(dashboard.Options{Addr: addr, AllowRemote: allowRemote, Hub: hub, Router: router, Logf: c.warnf})
	if err != nil {
		return fail(err)
	}
	unpublish, err := srv.Publish(stateDir(dir), os.Getpid(), started)
	if err != nil {
		cctx, cancel := context.WithTimeout(context.Background(), closeGrace)
		defer cancel()
		_ = srv.Close(cctx)
		return fail(err)
	}
	if addr != "" {
		fmt.Fprintf(w, "Dashboard: %s\n(it stops when the apply ends; `stratus ui` shows the results afterwards)\n\n", srv.URL())
	}
	return &controlPlane{srv: srv, hub: hub, unpublish: unpublish}, nil
}

// Observer is what feeds the dashboard; a nil control plane observes nothing.
func (cp *controlPlane) Observer() executor.Observer {
	if cp == nil {
		return executor.Observers(nil)
	}
	return cp.hub
}

// Close removes control.json, ends the event streams (browsers keep the final
// state) and stops the server after requests in flight, within closeGrace. It is
// safe to call twice and on nil.
func (cp *controlPlane) Close() {
	if cp == nil {
		return
	}
	if cp.unpublish != nil {
		_ = cp.unpublish()
		cp.unpublish = nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), closeGrace)
	defer cancel()
	_ = cp.srv.Close(ctx)
}
