package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/rogpeppe/go-internal/testscript"

	"github.com/stratus-ml/stratus/dsl"
	"github.com/stratus-ml/stratus/planner"
	"github.com/stratus-ml/stratus/state"
)

// TestMain lets the test binary double as the stratus command inside scripts: the
// scripts' "stratus" runs run() in a child process of this binary, with the script's
// working directory and environment, and no terminal (so no colour).
//
// No test reads or writes this machine's calibration history (the user's cache
// directory, planner/calibration_machine.go), so that a plan's output never
// depends on what ran before: the test process and every binary it starts
// inherit STRATUS_CALIBRATION=off, whatever the caller set, and each script has
// its own history in its work directory (TestScripts' Setup).
func TestMain(m *testing.M) {
	if filepath.Base(os.Args[0]) != "stratus" {
		// The test process, not a script's stratus (this binary run again as
		// that command, with the script's own history in its environment).
		os.Setenv(planner.MachineHistoryEnv, "off")
	}
	testscript.Main(removingBuild{m}, map[string]func(){
		"stratus": func() { os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) },
	})
}

// removingBuild runs the tests, then removes the binary buildStratus built.
type removingBuild struct{ m *testing.M }

func (r removingBuild) Run() int {
	code := r.m.Run()
	if builtStratusDir != "" {
		os.RemoveAll(builtStratusDir)
	}
	return code
}

// TestScripts runs the CLI scripts in testdata/script. Set STRATUS_UPDATE_SCRIPTS=1
// to rewrite their golden files from the actual output (then review the diff).
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/script",
		UpdateScripts:       os.Getenv("STRATUS_UPDATE_SCRIPTS") != "",
		RequireExplicitExec: true, // `exec stratus …`: the script says a program runs
		RequireUniqueNames:  true,
		Setup: func(env *testscript.Env) error {
			// $TESTDATA is the repository's data sets, for scripts that apply for real.
			abs, err := filepath.Abs("../../testdata")
			env.Setenv("TESTDATA", abs)
			// This script's own calibration history and cache directory,
			// empty at its start (see TestMain).
			cache := filepath.Join(env.WorkDir, ".cache")
			env.Setenv("XDG_CACHE_HOME", cache)
			env.Setenv(planner.MachineHistoryEnv, filepath.Join(cache, "stratus", "calibration.json"))
			return err
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"status":         cmdStatus,
			"record-apply":   cmdRecordApply,
			"seed-output":    cmdSeedOutput,
			"planfile-check": cmdPlanfileCheck,
			"redact-keys":    cmdRedactKeys,
			"wait-file":      cmdWaitFile, // psstore_script_test.go
			"ps-model":       cmdPSModel,
			"near":           cmdNear, // elastic_script_test.go
		},
	})
}

// cmdStatus runs a program and checks its exact exit status, which `exec` and `!`
// cannot: status N PROGRAM ARGS...
func cmdStatus(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: status N PROGRAM [ARGS...]")
	}
	want, err := strconv.Atoi(args[0])
	ts.Check(err)
	got := 0
	if err := ts.Exec(args[1], args[2:]...); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			ts.Fatalf("run %s: %v", args[1], err)
		}
		got = ee.ExitCode()
	}
	if got != want {
		ts.Fatalf("%s exited with status %d, want %d", args[1], got, want)
	}
}

// loadArgs reads [DIR] [-var NAME=VALUE]... for the helper commands.
func loadArgs(ts *testscript.TestScript, args []string) (dir string, vars []string) {
	dir = "."
	for i := 0; i < len(args); i++ {
		if args[i] == "-var" && i+1 < len(args) {
			vars = append(vars, args[i+1])
			i++
			continue
		}
		dir = args[i]
	}
	return ts.MkAbs(dir), vars
}

// cmdRecordApply simulates a successful apply of the pipeline: it plans it and
// records every stage of the plan in the state store, as apply will, so later plans
// see the stages as cached or changed. record-apply [DIR] [-var NAME=VALUE]...
func cmdRecordApply(ts *testscript.TestScript, neg bool, args []string) {
	if neg {
		ts.Fatalf("record-apply does not fail")
	}
	dir, vars := loadArgs(ts, args)
	cfg, diags := dsl.Load(dir, dsl.LoadOptions{Registry: registry, Vars: vars})
	if diags.HasErrors() {
		ts.Fatalf("load: %s", diags.Error())
	}
	st := openScriptState(ts, stateDBDir(dir), state.Open)
	defer closeScriptState(ts, st, stateDBDir(dir))
	p, diags := planner.Build(context.Background(), cfg, planner.Options{State: st})
	if diags.HasErrors() {
		ts.Fatalf("plan: %s", diags.Error())
	}
	now := time.Now()
	for _, s := range p.Stages {
		ts.Check(st.PutStage(&state.StageRecord{
			Address: s.Address, Operator: s.Operator, Version: s.Version, Key: s.Key,
			Params: s.Params, Upstream: s.Upstream, Sources: s.Sources,
			Started: now, Finished: now, Backend: "local",
		}))
	}
}

// cmdSeedOutput records a root output as an apply would: seed-output DIR NAME VALUE,
// VALUE an HCL expression such as 0.32 or '{ lr = 0.1 }'.
func cmdSeedOutput(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 3 {
		ts.Fatalf("usage: seed-output DIR NAME VALUE")
	}
	expr, diags := hclsyntax.ParseExpression([]byte(args[2]), "value", hcl.InitialPos)
	if diags.HasErrors() {
		ts.Fatalf("parse %s: %s", args[2], diags.Error())
	}
	v, diags := expr.Value(nil)
	if diags.HasErrors() {
		ts.Fatalf("evaluate %s: %s", args[2], diags.Error())
	}
	raw, err := state.EncodeValue(v)
	ts.Check(err)
	st := openScriptState(ts, stateDBDir(ts.MkAbs(args[0])), state.Open)
	defer closeScriptState(ts, st, stateDBDir(ts.MkAbs(args[0])))
	outs, err := st.Outputs()
	ts.Check(err)
	if outs == nil {
		outs = map[string]json.RawMessage{}
	}
	outs[args[1]] = raw
	ts.Check(st.PutOutputs(outs))
}

// cmdPlanfileCheck reads a saved plan, re-plans its pipeline against the current
// state, and prints its stages and whether it still holds, as apply will decide:
// planfile-check FILE.
func cmdPlanfileCheck(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: planfile-check FILE")
	}
	f, err := planner.ReadFile(ts.MkAbs(args[0]))
	ts.Check(err)
	for _, s := range f.Stages {
		fmt.Fprintf(ts.Stdout(), "%s %s %s\n", s.Action.Symbol(), s.Address, s.Action)
	}
	cfg, diags := dsl.Load(f.Dir, dsl.LoadOptions{Registry: registry, Vars: f.Vars, VarFiles: f.VarFiles})
	if diags.HasErrors() {
		ts.Fatalf("load: %s", diags.Error())
	}
	st := openScriptState(ts, stateDBDir(f.Dir), state.OpenExisting)
	defer closeScriptState(ts, st, stateDBDir(f.Dir))
	p, diags := planner.Build(context.Background(), cfg, planner.Options{State: st, Target: f.Target, Replace: f.Replace})
	if diags.HasErrors() {
		ts.Fatalf("plan: %s", diags.Error())
	}
	err = f.Check(p)
	var stale *planner.StaleError
	switch {
	case err == nil:
		fmt.Fprintln(ts.Stdout(), "fresh")
	case errors.As(err, &stale):
		fmt.Fprintln(ts.Stdout(), "stale:", stale.Reason)
	default:
		ts.Fatalf("check: %v", err)
	}
	if neg != (err != nil) {
		ts.Fatalf("planfile-check: got %v", err)
	}
}

var hexKey = regexp.MustCompile(`\b[0-9a-f]{64}\b`)

// cmdRedactKeys replaces every cache key (64 hex digits) in FILE with <key>, so a
// golden file pins the shape of an output rather than key values, which change with
// any operator schema change: redact-keys FILE.
func cmdRedactKeys(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: redact-keys FILE")
	}
	fn := ts.MkAbs(args[0])
	b, err := os.ReadFile(fn)
	ts.Check(err)
	ts.Check(os.WriteFile(fn, hexKey.ReplaceAll(b, []byte("<key>")), 0o644))
}

// The helper commands open the state in the test process, which other scripts'
// goroutines fork from at the same time. A child forked while the database's
// directory lock (a flock on an open directory) is held keeps a copy of that file
// description until it execs, so the lock can outlive Close by that window and the
// script's next command would see "state in use" — a race of the test process that a
// user's separate stratus processes never meet. openScriptState waits for such a lock
// to go, and closeScriptState waits until the lock it released is free again.

// scriptLockWait bounds the wait for a forked child to exec.
const scriptLockWait = 30 * time.Second

func openScriptState(ts *testscript.TestScript, dir string, open func(string) (*state.Store, error)) *state.Store {
	deadline := time.Now().Add(scriptLockWait)
	for {
		st, err := open(dir)
		if errors.Is(err, state.ErrInUse) && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
			continue
		}
		ts.Check(err)
		return st
	}
}

func closeScriptState(ts *testscript.TestScript, st *state.Store, dir string) {
	if st == nil {
		return
	}
	ts.Check(st.Close())
	deadline := time.Now().Add(scriptLockWait)
	for !dirLockFree(dir) {
		if time.Now().After(deadline) {
			ts.Fatalf("the state lock of %s is still held %s after Close", dir, scriptLockWait)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
