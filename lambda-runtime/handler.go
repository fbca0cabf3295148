// Package lambdaruntime is the function side of the lambda backend: the code inside
// the deployed Lambda function (the `bootstrap` binary of the provided.al2023
// runtime). It decodes the Task the backend sent as the invocation payload,
// builds its Env with operators/taskenv, and dispatches it through
// operators.Registry.Dispatch — the same code path the local backend runs in a
// goroutine.
//
// Errors come back as Lambda function errors (errorType, errorMessage and, for a
// handler panic, stackTrace), which the backend turns into task failures.
package lambdaruntime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"reflect"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambda/messages"

	"github.com/stratus-ml/stratus/operators"
	"github.com/stratus-ml/stratus/operators/taskenv"
)

// Handler serves invocations. It is the lambda.Handler the function starts with; it
// is safe for concurrent use, though Lambda sends one invocation at a time per
// execution environment. Its taskenv.Factory lives as long as the process, so
// connections it caches survive across warm invocations.
type Handler struct {
	reg  *operators.Registry
	envs *taskenv.Factory
	// served is set by the process's first invocation, which reports the
	// cold start.
	served atomic.Bool
}

// processStart is when the function's process started (its Go runtime, as
// near as the process can tell).
var processStart = time.Now()

var _ lambda.Handler = (*Handler)(nil)

// NewHandler returns a Handler dispatching to reg with environments from envs.
func NewHandler(reg *operators.Registry, envs *taskenv.Factory) *Handler {
	return &Handler{reg: reg, envs: envs}
}

// Start runs the function: it serves invocations from the Lambda Runtime API until
// the process ends, logging to stderr (the function's log, whose tail the backend
// returns). It does not return.
func Start(reg *operators.Registry) {
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: logLevel()}))
	envs := taskenv.New(taskenv.WithLogger(logger))
	lambda.Start(NewHandler(reg, envs))
}

func logLevel() slog.Level {
	var l slog.Level
	if err := l.UnmarshalText([]byte(os.Getenv("STRATUS_LOG_LEVEL"))); err != nil {
		return slog.LevelInfo
	}
	return l
}

// Invoke runs one task. payload is a JSON operators.Task; the reply is a JSON
// operators.Result. The handler's context ends at the earlier of
//
//   - the Lambda deadline, less a reserve (1/20 of the time left, at most 1 s) so
//     the function replies with an error rather than being killed by Lambda, and
//   - Task.Deadline plus the grace period the executor's runner allows past it
//     (a tenth of the time left, between 100 ms and 30 s), after which the
//     executor no longer waits for the reply.
//
// A failure is returned as a messages.InvokeResponse_Error: errorType is the Go
// type of the error ("PanicError" for a handler panic, with its stack as
// stackTrace), errorMessage its text.
func (h *Handler) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	// The first invocation of the process reports its cold start: the time
	// from the process's start to this invocation.
	var cold time.Duration
	if h.served.CompareAndSwap(false, true) {
		cold = time.Since(processStart)
	}
	if err := operators.CheckSize("task payload", payload); err != nil {
		return nil, failure(err)
	}
	var task operators.Task
	if err := json.Unmarshal(payload, &task); err != nil {
		return nil, failure(fmt.Errorf("payload is not a stratus task (is the function invoked by something else?): %w", err))
	}
	if task.Kind == "" {
		return nil, failure(fmt.Errorf("payload is not a stratus task: no kind"))
	}
	ctx, cancel, which := taskContext(ctx, task.Deadline, time.Now())
	defer cancel()
	env, err := h.envs.Env(ctx, &task)
	if err != nil {
		return nil, failure(fmt.Errorf("task %s: set up task environment: %w", task.Name(), err))
	}
	res, err := h.reg.Dispatch(ctx, env, &task)
	if err != nil {
		if ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
			err = fmt.Errorf("%w (stopped at the %s)", err, which)
		} else if ctx.Err() != nil {
			err = fmt.Errorf("task %s stopped at the %s: %w", task.Name(), which, err)
		}
		env.Logger().Error("task failed", "err", err)
		return nil, failure(err)
	}
	if cold > 0 {
		r := *res
		r.ColdStart = cold
		res = &r
	}
	out, err := json.Marshal(res)
	if err != nil {
		return nil, failure(fmt.Errorf("task %s: encode result: %w", task.Name(), err))
	}
	if err := operators.CheckSize("result of task "+task.Name(), out); err != nil {
		return nil, failure(err)
	}
	return out, nil
}

// taskContext derives the handler's context from the invocation's. which names the
// deadline that ends it, for messages.
func taskContext(ctx context.Context, taskDeadline, now time.Time) (context.Context, context.CancelFunc, string) {
	var end time.Time
	which := "no deadline"
	if !taskDeadline.IsZero() {
		end = taskDeadline.Add(operators.HandOverGrace(taskDeadline.Sub(now)))
		which = "task deadline " + taskDeadline.Format(time.TimeOnly)
	}
	if ld, ok := ctx.Deadline(); ok {
		ld = ld.Add(-reserve(ld.Sub(now)))
		if end.IsZero() || ld.Before(end) {
			end = ld
			which = "Lambda deadline"
		}
	}
	if end.IsZero() {
		c, cancel := context.WithCancel(ctx)
		return c, cancel, which
	}
	c, cancel := context.WithDeadline(ctx, end)
	return c, cancel, which
}

// reserve is the time kept back before the Lambda deadline to send the reply.
func reserve(left time.Duration) time.Duration {
	return min(max(left/20, 0), time.Second)
}

// failure turns err into the function error Lambda reports.
func failure(err error) error {
	e := messages.InvokeResponse_Error{Message: err.Error(), Type: errorType(err)}
	var pe *operators.PanicError
	if errors.As(err, &pe) {
		e.Type = "PanicError"
		e.StackTrace = handlerFrames(parseStack(pe.Stack))
		fmt.Fprintf(os.Stderr, "%s\n%s\n", err, pe.Stack)
	}
	return e
}

func errorType(err error) string {
	t := reflect.TypeOf(err)
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t.Name()
}

// handlerFrames keeps the frames between the panic and the runtime's call of the
// registry: the handler's own.
func handlerFrames(fs []*messages.InvokeResponse_Error_StackFrame) []*messages.InvokeResponse_Error_StackFrame {
	start, end := 0, len(fs)
	for i, f := range fs {
		if f.Label == "panic" && start == 0 {
			start = i + 1
		}
		if strings.HasSuffix(f.Label, ".(*Handler).Invoke") && strings.Contains(f.Label, "lambda-runtime") {
			end = i
			break
		}
	}
	if start >= end {
		return fs
	}
	return fs[start:end]
}

// parseStack turns a runtime/debug.Stack dump into Lambda stack frames: pairs of
// lines "pkg.Func(args)" and "\t/path/file.go:123 +0x1f".
func parseStack(s string) []*messages.InvokeResponse_Error_StackFrame {
	var frames []*messages.InvokeResponse_Error_StackFrame
	lines := strings.Split(s, "\n")
	for i := 0; i+1 < len(lines); i++ {
		fn, loc := lines[i], lines[i+1]
		if !strings.HasPrefix(loc, "\t") || strings.HasPrefix(fn, "\t") {
			continue
		}
		i++
		loc = strings.TrimSpace(loc)
		if sp := strings.LastIndexByte(loc, ' '); sp > 0 {
			loc = loc[:sp]
		}
		path, line := loc, 0
		if c := strings.LastIndexByte(loc, ':'); c > 0 {
			path = loc[:c]
			line, _ = strconv.Atoi(loc[c+1:])
		}
		if p := strings.IndexByte(fn, '('); p > 0 && strings.HasSuffix(fn, ")") {
			// Drop the argument list, keep the receiver: "pkg.(*T).M(0x1)" → "pkg.(*T).M".
			if q := strings.LastIndex(fn, "("); q > 0 {
				fn = fn[:q]
			}
		}
		frames = append(frames, &messages.InvokeResponse_Error_StackFrame{Path: path, Line: int32(line), Label: fn})
	}
	return frames
}
