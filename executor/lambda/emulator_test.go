package lambda_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stratus-ml/stratus/executor"
	"github.com/stratus-ml/stratus/executor/executortest"
	lambdabe "github.com/stratus-ml/stratus/executor/lambda"
	"github.com/stratus-ml/stratus/executor/lambda/lambdatest"
	"github.com/stratus-ml/stratus/executor/local"
	"github.com/stratus-ml/stratus/executor/testops"
	"github.com/stratus-ml/stratus/operators/taskenv"
)

// pipeline exercises every part of the runner: a map wave whose tasks fail twice
// each before succeeding, a two-wave map-reduce, long-running workers relaunched
// across generations, and a stage reading another's output.
const pipeline = `
test_map "sq" {
  tasks      = 9
  fail_times = 2
  fail_index = 4
}
test_mapreduce "mr" {
  tasks    = 7
  reducers = 3
}
test_longrun "lr" {
  workers  = 2
  steps    = 12
  step     = "5ms"
  lifetime = "40ms"
}
test_map "after" {
  tasks  = 3
  offset = test_map.sq.sum
}
output "sum"      { value = test_map.sq.sum }
output "mr"       { value = test_mapreduce.mr.sum }
output "partials" { value = test_mapreduce.mr.partials }
output "steps"    { value = test_longrun.lr.steps }
output "after"    { value = test_map.after.sum }
`

func TestLambdaMatchesLocal(t *testing.T) {
	lrec := &executortest.Recorder{}
	lb := local.New(testops.Registry(), taskenv.New(), local.Options{MaxConcurrency: 3})
	want, lsum, err := applyOn(t, lb, pipeline, lrec)
	lb.Close()
	if err != nil {
		for _, s := range lsum.Stages {
			if s.Error != "" {
				t.Logf("%s: %s", s.Address, s.Error)
			}
		}
		t.Fatalf("local: %v", err)
	}
	be, ems := emulators(t, 3, lambdatest.Options{})
	rec := &executortest.Recorder{}
	got, sum, err := applyOn(t, be, pipeline, rec)
	if err != nil {
		for _, s := range sum.Stages {
			if s.Error != "" {
				t.Logf("%s: %s", s.Address, s.Error)
			}
		}
		t.Fatalf("lambda: %v", err)
	}
	if len(got) != 5 {
		t.Fatalf("outputs %v", got)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("output %s: lambda %s, local %s", k, got[k], v)
		}
	}
	// The values themselves: 0²+…+8² = 204; map-reduce of i, 2i, 3i for i < 7 = 126.
	if got["sum"] != "204" || got["mr"] != "126" || got["steps"] != "24" || got["after"] != fmt.Sprint(204*204+205*205+206*206) {
		t.Errorf("outputs %v", got)
	}
	// The injected failures, exactly; a loaded machine may add retries of the
	// 40ms-lifetime workers, which this test does not count.
	injected := rec.Of(executor.TaskRetried, "test_map.sq")
	if n := len(injected); n != 2 {
		t.Errorf("lambda: %d retries of test_map.sq, want 2 (task 4 fails twice)", n)
	}
	if n := len(rec.Of(executor.TaskRelaunch, "")); n == 0 {
		t.Error("lambda: long-running workers were never relaunched")
	}
	for _, r := range injected {
		if !strings.Contains(r.Reason, "injected failure") || !strings.Contains(r.Reason, "test_map.sq") {
			t.Errorf("retry reason %q lacks the handler's message or the stage", r.Reason)
		}
	}
	for _, s := range sum.Stages {
		if s.Action != "ran" || s.GBSeconds <= 0 {
			t.Errorf("stage %s: %s, %.6f GB-s", s.Address, s.Action, s.GBSeconds)
		}
	}
	for _, e := range ems {
		if !e.Alive() {
			t.Errorf("emulator %s died", e.URL)
		}
	}
}

func TestLambdaHandlerError(t *testing.T) {
	be, _ := emulators(t, 1, lambdatest.Options{})
	_, _, err := be.Invoke(context.Background(), task(t, 3, map[string]any{"i": 3, "fail_times": 1}))
	var fe *lambdabe.FunctionError
	if !errors.As(err, &fe) {
		t.Fatalf("err = %v (%T), want a *FunctionError", err, err)
	}
	if fe.Kind != "Handled" || fe.Type != "errorString" || fe.Message != "injected failure 1 of 1" || fe.Stage != "test_map.m" || fe.Task != "test_map.m/map[3]" {
		t.Errorf("function error %+v", fe)
	}
	if !strings.Contains(err.Error(), "test_map.m/map[3]") || !strings.Contains(err.Error(), "injected failure 1 of 1") {
		t.Errorf("message %q", err)
	}

	// Through the runner: out of retries, the stage fails with every attempt's reason.
	_, sum, err := applyOn(t, be, `test_map "m" {
  tasks      = 4
  fail_times = 9
  fail_index = 2
}`, nil)
	if !errors.Is(err, executor.ErrStagesFailed) {
		t.Fatalf("err = %v, want a failed stage", err)
	}
	msg := sum.Stages[0].Error
	for i := 1; i <= 4; i++ {
		if !strings.Contains(msg, fmt.Sprintf("errorString: injected failure %d of 9", i)) {
			t.Errorf("stage error lacks attempt %d's reason:\n%s", i, msg)
		}
	}
}

func TestLambdaPanicAndCrash(t *testing.T) {
	be, ems := emulators(t, 2, lambdatest.Options{})

	// A panic is recovered by the registry and reported as a handled error with
	// the handler's stack.
	_, _, err := be.Invoke(context.Background(), task(t, 1, map[string]any{"i": 1, "panic": true}))
	var fe *lambdabe.FunctionError
	if !errors.As(err, &fe) {
		t.Fatalf("panic: err = %v, want a *FunctionError", err)
	}
	if fe.Type != "PanicError" || !strings.Contains(fe.Message, "injected panic in task test_map.m/map[1]") {
		t.Errorf("panic: %+v", fe)
	}
	if len(fe.Stack) == 0 || !strings.Contains(fe.Stack[0], "testops.square") {
		t.Errorf("panic: stack should start in the handler: %q", fe.Stack)
	}

	// os.Exit in the function: the emulator answers 502 and starts a new process
	// for the next invocation.
	_, _, err = be.Invoke(context.Background(), task(t, 2, map[string]any{"i": 2, "exit": true}))
	fe = nil
	if !errors.As(err, &fe) {
		t.Fatalf("crash: err = %v, want a *FunctionError", err)
	}
	if fe.Kind != "Unhandled" || fe.Type != "Runtime.ExitError" || !strings.Contains(fe.Message, "exit status 3") {
		t.Errorf("crash: %+v", fe)
	}
	if !strings.Contains(err.Error(), "crashed") {
		t.Errorf("crash: message %q", err)
	}

	// Through the runner both are retried and the stage completes.
	for _, tc := range []struct{ name, cfg, reason string }{
		{"panic", "panic_index = 2", "PanicError: task test_map.m/map[2] panicked: injected panic"},
		{"crash", "exit_index = 1", "Runtime.ExitError"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &executortest.Recorder{}
			outs, _, err := applyOn(t, be, "test_map \"m\" {\n  tasks = 5\n  "+tc.cfg+"\n}\noutput \"sum\" { value = test_map.m.sum }\n", rec)
			if err != nil {
				t.Fatal(err)
			}
			if outs["sum"] != "30" {
				t.Errorf("sum = %s, want 0+1+4+9+16 = 30", outs["sum"])
			}
			retries := rec.Of(executor.TaskRetried, "")
			if len(retries) != 1 || !strings.Contains(retries[0].Reason, tc.reason) {
				t.Fatalf("retries %+v, want one with %q", retries, tc.reason)
			}
			fin := rec.Of(executor.StageFinished, "")
			if len(fin) != 1 || fin[0].Summary.Tasks != 6 {
				t.Errorf("stage finished %+v, want 6 attempts", fin)
			}
		})
	}
	for _, e := range ems {
		if !e.Alive() {
			t.Errorf("emulator %s died", e.URL)
		}
	}
}

// TestLambdaDeadlines checks both ends of a function's time: the handler's context
// ends at the Lambda deadline (less a reserve, so it replies) and at the task's
// deadline (plus the runner's grace).
func TestLambdaDeadlines(t *testing.T) {
	be, _ := emulators(t, 1, lambdatest.Options{Timeout: time.Second})
	tk := task(t, 0, map[string]any{"i": 0, "sleep": int64(10 * time.Second)})
	_, _, err := be.Invoke(context.Background(), tk)
	var fe *lambdabe.FunctionError
	if !errors.As(err, &fe) || !strings.Contains(fe.Message, "stopped at the Lambda deadline") || !strings.Contains(fe.Message, "context deadline exceeded") {
		t.Fatalf("Lambda deadline: err = %v", err)
	}

	tk = task(t, 0, map[string]any{"i": 0, "sleep": int64(10 * time.Second)})
	tk.Deadline = time.Now().Add(200 * time.Millisecond)
	_, _, err = be.Invoke(context.Background(), tk)
	if !errors.As(err, &fe) || !strings.Contains(fe.Message, "stopped at the task deadline") {
		t.Fatalf("task deadline: err = %v", err)
	}

	// A handler that ignores its context runs into Lambda's timeout; the emulator
	// answers with its timeout message, which must not pass for a result.
	tk = task(t, 0, map[string]any{"i": 0, "hang": int64(1500 * time.Millisecond)})
	_, _, err = be.Invoke(context.Background(), tk)
	if err == nil || !strings.Contains(err.Error(), "Task timed out") {
		t.Fatalf("Lambda timeout: err = %v", err)
	}
}

// TestLambdaOneInvokePerEndpoint drives many concurrent attempts through few
// emulators, some abandoned while their function still runs; an emulator that
// received a second invocation while busy would crash.
func TestLambdaOneInvokePerEndpoint(t *testing.T) {
	be, ems := emulators(t, 2, lambdatest.Options{})
	if be.Slots() != 2 {
		t.Fatalf("Slots = %d, want 2", be.Slots())
	}
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for i := range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i%25 == 0 {
				// Abandoned after 20ms while the function sleeps 150ms, ignoring it.
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
				defer cancel()
				_, _, err := be.Invoke(ctx, task(t, i, map[string]any{"i": i, "hang": int64(150 * time.Millisecond)}))
				if !errors.Is(err, context.DeadlineExceeded) {
					errs <- fmt.Errorf("abandoned task %d: %v", i, err)
				}
				return
			}
			res, _, err := be.Invoke(context.Background(), task(t, i, map[string]any{"i": i, "sleep": int64(time.Millisecond)}))
			if err != nil {
				errs <- fmt.Errorf("task %d: %w", i, err)
				return
			}
			if want := fmt.Sprintf(`{"square":%d}`, i*i); string(res.Output) != want {
				errs <- fmt.Errorf("task %d: output %s, want %s", i, res.Output, want)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for _, e := range ems {
		if !e.Alive() {
			t.Errorf("emulator %s crashed", e.URL)
		}
		if strings.Contains(e.Log(), "AlreadyReserved") {
			t.Errorf("emulator %s received concurrent invocations", e.URL)
		}
	}
}
