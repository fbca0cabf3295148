package main

import (
	"context"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/stratus-ml/stratus/psstore"
)

// cmdWaitFile waits for a file (such as psstore serve's --addr-file) to
// appear and sets an environment variable to its trimmed content:
// wait-file FILE VAR. It gives up after a minute.
func cmdWaitFile(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: wait-file FILE VAR")
	}
	path := ts.MkAbs(args[0])
	for deadline := time.Now().Add(time.Minute); ; {
		b, err := os.ReadFile(path)
		if err == nil {
			ts.Setenv(args[1], strings.TrimSpace(string(b)))
			return
		}
		if time.Now().After(deadline) {
			ts.Fatalf("%s did not appear within a minute", args[0])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// cmdPSModel creates a model on a psstore cluster and pushes one gradient to
// it, as a train stage would: ps-model ADDRS TOKEN NAME DIM. The script's
// $STRATUS_PSSTORE_REPLICAS sets the copies of a new cluster.
func cmdPSModel(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 4 {
		ts.Fatalf("usage: ps-model ADDRS TOKEN NAME DIM")
	}
	dim, err := strconv.ParseUint(args[3], 10, 64)
	ts.Check(err)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	opts := []psstore.Option{psstore.WithToken(args[1])}
	if v := ts.Getenv(psstore.ReplicasEnv); v != "" { // the script's env, not this process's
		r, err := strconv.Atoi(v)
		ts.Check(err)
		opts = append(opts, psstore.WithReplicas(r))
	}
	c, err := psstore.Dial(ctx, strings.Split(args[0], ","), opts...)
	ts.Check(err)
	defer c.Close()
	ts.Check(c.CreateModel(ctx, psstore.ModelSpec{Name: args[2], Dim: dim, LearningRate: 0.1}))
	ts.Check(c.PushSparse(ctx, args[2], []uint64{0}, []float32{1}))
	ts.Check(c.Flush(ctx))
	ts.Check(c.Put(ctx, "ctl/"+args[2]+"/stop", []byte("{}")))
}
