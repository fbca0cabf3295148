package lambdaruntime

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/lambda/messages"
	"github.com/zclconf/go-cty/cty"

	"github.com/stratus-ml/stratus/operators"
	"github.com/stratus-ml/stratus/operators/taskenv"
)

func testHandler(t *testing.T) *Handler {
	t.Helper()
	reg, err := operators.NewRegistry(&operators.Operator{
		Schema: &operators.Schema{Name: "t", Version: 1, Outputs: map[string]cty.Type{"x": cty.Number}},
		Handlers: map[string]operators.Handler{
			"t.echo": func(ctx context.Context, env operators.Env, task *operators.Task) (*operators.Result, error) {
				return &operators.Result{Output: task.Params}, nil
			},
			"t.fail": func(ctx context.Context, env operators.Env, task *operators.Task) (*operators.Result, error) {
				return nil, errors.New("no such partition")
			},
			"t.panic": func(ctx context.Context, env operators.Env, task *operators.Task) (*operators.Result, error) {
				var m map[string]int
				//lint:ignore SA5000 the nil map is the point: a runtime panic inside the handler
				m["x"]++
				return nil, nil
			},
			"t.wait": func(ctx context.Context, env operators.Env, task *operators.Task) (*operators.Result, error) {
				<-ctx.Done()
				return nil, ctx.Err()
			},
			"t.big": func(ctx context.Context, env operators.Env, task *operators.Task) (*operators.Result, error) {
				b, _ := json.Marshal(strings.Repeat("x", operators.MaxPayload))
				return &operators.Result{Output: b}, nil
			},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return NewHandler(reg, taskenv.New())
}

func invoke(t *testing.T, h *Handler, ctx context.Context, task operators.Task) ([]byte, *messages.InvokeResponse_Error) {
	t.Helper()
	if task.Stage == "" {
		task.Stage, task.Wave = "t.s", "w"
	}
	b, _ := json.Marshal(task)
	out, err := h.Invoke(ctx, b)
	if err == nil {
		return out, nil
	}
	var ie messages.InvokeResponse_Error
	if !errors.As(err, &ie) {
		t.Fatalf("error %T %v is not a Lambda function error", err, err)
	}
	return nil, &ie
}

func TestInvoke(t *testing.T) {
	h := testHandler(t)
	// The process's first invocation reports its cold start; later ones do not.
	out, ie := invoke(t, h, context.Background(), operators.Task{Kind: "t.echo", Params: json.RawMessage(`{"a":1}`)})
	var first operators.Result
	if ie != nil || json.Unmarshal(out, &first) != nil || string(first.Output) != `{"a":1}` || first.ColdStart <= 0 {
		t.Errorf("first echo: %s, %v; want its output and a cold start", out, ie)
	}
	out, ie = invoke(t, h, context.Background(), operators.Task{Kind: "t.echo", Params: json.RawMessage(`{"a":1}`)})
	if ie != nil || string(out) != `{"output":{"a":1}}` {
		t.Errorf("echo: %s, %v", out, ie)
	}

	_, ie = invoke(t, h, context.Background(), operators.Task{Kind: "t.fail"})
	if ie == nil || ie.Type != "errorString" || ie.Message != "no such partition" {
		t.Errorf("fail: %+v", ie)
	}

	_, ie = invoke(t, h, context.Background(), operators.Task{Kind: "t.panic", Index: 7})
	if ie == nil || ie.Type != "PanicError" || !strings.Contains(ie.Message, "task t.s/w[7] panicked: assignment to entry in nil map") {
		t.Fatalf("panic: %+v", ie)
	}
	if len(ie.StackTrace) == 0 || !strings.Contains(ie.StackTrace[0].Label, "testHandler.func3") || !strings.HasSuffix(ie.StackTrace[0].Path, "handler_test.go") {
		t.Errorf("panic: the stack should start in the handler: %+v", ie.StackTrace[0])
	}
	for _, f := range ie.StackTrace {
		if strings.Contains(f.Label, "aws-lambda-go") || strings.Contains(f.Label, "debug.Stack") {
			t.Errorf("panic: frame %+v is the runtime's, not the handler's", f)
		}
	}

	_, ie = invoke(t, h, context.Background(), operators.Task{Kind: "t.nope"})
	if ie == nil || !strings.Contains(ie.Message, `no handler for task kind "t.nope"`) {
		t.Errorf("unknown kind: %+v", ie)
	}

	_, ie = invoke(t, h, context.Background(), operators.Task{Kind: "t.big"})
	if ie == nil || !strings.Contains(ie.Message, "over the 262144-byte limit") {
		t.Errorf("big result: %+v", ie)
	}

	for _, p := range []string{`[1,2]`, `{"stage":"x"}`, `not json`} {
		if _, err := h.Invoke(context.Background(), []byte(p)); err == nil || !strings.Contains(err.Error(), "not a stratus task") {
			t.Errorf("payload %s: %v", p, err)
		}
	}
}

func TestInvokeStopsAtDeadlines(t *testing.T) {
	h := testHandler(t)
	// The task's deadline (plus the 100ms minimum grace) ends the handler.
	_, ie := invoke(t, h, context.Background(), operators.Task{Kind: "t.wait", Deadline: time.Now().Add(50 * time.Millisecond)})
	if ie == nil || !strings.Contains(ie.Message, "stopped at the task deadline") || !strings.Contains(ie.Message, "context deadline exceeded") {
		t.Errorf("task deadline: %+v", ie)
	}
	// The Lambda deadline, when earlier, ends it.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, ie = invoke(t, h, ctx, operators.Task{Kind: "t.wait", Deadline: time.Now().Add(time.Hour)})
	if ie == nil || !strings.Contains(ie.Message, "stopped at the Lambda deadline") {
		t.Errorf("Lambda deadline: %+v", ie)
	}
}

func TestTaskContext(t *testing.T) {
	now := time.Now()
	for _, tc := range []struct {
		name   string
		lambda time.Duration // 0: none
		task   time.Duration // 0: none
		want   time.Duration // from now; 0: no deadline
		which  string
	}{
		{"task only", 0, 10 * time.Second, 11 * time.Second, "task deadline"},
		{"short task: 100ms grace", 0, 200 * time.Millisecond, 300 * time.Millisecond, "task deadline"},
		{"long task: 30s grace", 0, time.Hour, time.Hour + 30*time.Second, "task deadline"},
		{"lambda earlier", 10 * time.Second, time.Minute, 10*time.Second - 500*time.Millisecond, "Lambda deadline"},
		{"lambda reserve capped at 1s", 15 * time.Minute, time.Hour, 15*time.Minute - time.Second, "Lambda deadline"},
		{"task earlier", 15 * time.Minute, time.Minute, time.Minute + 6*time.Second, "task deadline"},
		{"none", 0, 0, 0, "no deadline"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			parent := context.Background()
			if tc.lambda > 0 {
				var cancel context.CancelFunc
				parent, cancel = context.WithDeadline(parent, now.Add(tc.lambda))
				defer cancel()
			}
			var td time.Time
			if tc.task > 0 {
				td = now.Add(tc.task)
			}
			ctx, cancel, which := taskContext(parent, td, now)
			defer cancel()
			if !strings.HasPrefix(which, tc.which) {
				t.Errorf("which = %q, want %q", which, tc.which)
			}
			d, ok := ctx.Deadline()
			if tc.want == 0 {
				if ok {
					t.Errorf("deadline %v, want none", d)
				}
				return
			}
			if got := d.Sub(now); got != tc.want {
				t.Errorf("deadline now+%v, want now+%v", got, tc.want)
			}
		})
	}
}

func TestParseStack(t *testing.T) {
	stack := "goroutine 1 [running]:\nruntime/debug.Stack()\n\t/go/src/runtime/debug/stack.go:26 +0x5e\n" +
		"github.com/x/y.(*T).M(0x1, {0x2})\n\t/src/y/t.go:12 +0x1f\npanic({0x72ed60?, 0x6c78461a8f0?})\n\t/go/src/runtime/panic.go:860 +0x13a\n"
	fs := parseStack(stack)
	if len(fs) != 3 {
		t.Fatalf("%d frames: %+v", len(fs), fs)
	}
	if fs[1].Label != "github.com/x/y.(*T).M" || fs[1].Path != "/src/y/t.go" || fs[1].Line != 12 || fs[2].Label != "panic" {
		t.Errorf("frames %+v %+v", fs[1], fs[2])
	}
	if parseStack("") != nil || parseStack("garbage\nmore garbage") != nil {
		t.Error("garbage parsed as frames")
	}
}

// FuzzParseStack: any text parses without panicking, into frames with a label.
func FuzzParseStack(f *testing.F) {
	f.Add("goroutine 1 [running]:\nmain.f()\n\t/a.go:1 +0x1\n")
	f.Add("x(\n\t:\n\t\n(\n\tz:99999999999999999999 +")
	f.Fuzz(func(t *testing.T, s string) {
		for _, fr := range parseStack(s) {
			if strings.HasPrefix(fr.Label, "\t") {
				t.Errorf("frame label %q is a location line", fr.Label)
			}
		}
		handlerFrames(parseStack(s))
	})
}
