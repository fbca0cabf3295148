package lambda_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"

	lambdabe "github.com/stratus-ml/stratus/executor/lambda"
	"github.com/stratus-ml/stratus/operators"
)

// answer is one scripted HTTP answer of a fake Lambda endpoint.
type answer struct {
	status  int
	headers map[string]string
	body    string
	hangup  bool // close the connection without answering
}

// fakeLambda answers Invoke requests from a script (the last answer repeats) and
// records what it received. It stands in for the service where the emulator cannot
// produce an answer: throttling, transient 5xx, network failures, log tails.
type fakeLambda struct {
	*httptest.Server
	mu       sync.Mutex
	script   []answer
	requests []*http.Request
	bodies   []string
}

func newFakeLambda(t *testing.T, script ...answer) *fakeLambda {
	f := &fakeLambda{script: script}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		buf, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		n := len(f.requests)
		f.requests = append(f.requests, r)
		f.bodies = append(f.bodies, string(buf))
		a := f.script[min(n, len(f.script)-1)]
		f.mu.Unlock()
		if a.hangup {
			c, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				c.Close()
			}
			return
		}
		for k, v := range a.headers {
			w.Header().Set(k, v)
		}
		w.WriteHeader(a.status)
		_, _ = w.Write([]byte(a.body))
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeLambda) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.requests)
}

var (
	ok200     = answer{status: 200, body: `{"output":{"square":4}}`}
	throttled = answer{status: 429, headers: map[string]string{"X-Amzn-ErrorType": "TooManyRequestsException"},
		body: `{"Type":"User","message":"Rate Exceeded.","Reason":"ConcurrentInvocationLimitExceeded"}`}
	unavailable = answer{status: 503, headers: map[string]string{"X-Amzn-ErrorType": "ServiceException"}, body: `{"message":"try later"}`}
	internal    = answer{status: 500, body: `{"message":"oops"}`}
	crashed     = answer{status: 502, body: `{"errorType":"Runtime.ExitError","errorMessage":"RequestId: 1 Error: Runtime exited with error: exit status 3"}`}
	badRequest  = answer{status: 400, headers: map[string]string{"X-Amzn-ErrorType": "InvalidRequestContentException"}, body: `{"message":"Could not parse request body into json"}`}
)

// noCredentials hides any credentials of the machine, so the emulator path must
// fall back to dummy ones.
func noCredentials(t *testing.T) {
	for _, k := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_LAMBDA"} {
		t.Setenv(k, "")
	}
	t.Setenv("AWS_CONFIG_FILE", t.TempDir()+"/none")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", t.TempDir()+"/none")
}

func fakeBackend(t *testing.T, f *fakeLambda, o lambdabe.Options) *lambdabe.Backend {
	t.Helper()
	o.Endpoints = []string{f.URL}
	if o.RetryBase == 0 {
		o.RetryBase = time.Millisecond
	}
	be, err := lambdabe.New(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { be.Close() })
	return be
}

func TestInvokeResendsTransientFailures(t *testing.T) {
	noCredentials(t)
	for _, tc := range []struct {
		name   string
		script []answer
	}{
		{"throttled twice", []answer{throttled, throttled, ok200}},
		{"503", []answer{unavailable, ok200}},
		{"500 then 429", []answer{internal, throttled, ok200}},
		{"connection dropped", []answer{{hangup: true}, ok200}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeLambda(t, tc.script...)
			be := fakeBackend(t, f, lambdabe.Options{})
			tk := task(t, 2, map[string]any{"i": 2})
			res, usage, err := be.Invoke(context.Background(), tk)
			if err != nil {
				t.Fatal(err)
			}
			if string(res.Output) != `{"square":4}` {
				t.Errorf("output %s", res.Output)
			}
			if f.count() != len(tc.script) {
				t.Errorf("%d requests, want %d", f.count(), len(tc.script))
			}
			if usage.Duration <= 0 || usage.MemoryMB != 1769 {
				t.Errorf("usage %+v", usage)
			}
			r := f.requests[0]
			if r.URL.Path != "/2015-03-31/functions/function/invocations" {
				t.Errorf("path %s, want the emulator's", r.URL.Path)
			}
			if !strings.Contains(r.Header.Get("Authorization"), "Credential=stratus-emulator/") {
				t.Errorf("no dummy credentials: %q", r.Header.Get("Authorization"))
			}
			if r.Header.Get("X-Amz-Log-Type") != "Tail" {
				t.Errorf("log type %q", r.Header.Get("X-Amz-Log-Type"))
			}
			// The payload is the task itself: the attempt's output prefix and
			// deadline travel with it.
			var sent operators.Task
			if err := json.Unmarshal([]byte(f.bodies[0]), &sent); err != nil {
				t.Fatalf("payload %s: %v", f.bodies[0], err)
			}
			if sent.Kind != "test.square" || sent.Index != 2 || sent.OutputPrefix != tk.OutputPrefix || !sent.Deadline.Equal(tk.Deadline) || string(sent.Params) != string(tk.Params) {
				t.Errorf("payload %s is not the task %+v", f.bodies[0], tk)
			}
		})
	}
}

func TestInvokeDoesNotResend(t *testing.T) {
	noCredentials(t)
	t.Run("502 is a crash", func(t *testing.T) {
		f := newFakeLambda(t, crashed, ok200)
		be := fakeBackend(t, f, lambdabe.Options{})
		_, _, err := be.Invoke(context.Background(), task(t, 1, map[string]any{"i": 1}))
		var fe *lambdabe.FunctionError
		if !errors.As(err, &fe) || fe.Kind != "Unhandled" || fe.Type != "Runtime.ExitError" || !strings.Contains(fe.Message, "exit status 3") {
			t.Fatalf("err = %v", err)
		}
		if f.count() != 1 {
			t.Errorf("%d requests: a crashed function must be left to the runner's retries", f.count())
		}
	})
	t.Run("400", func(t *testing.T) {
		f := newFakeLambda(t, badRequest, ok200)
		be := fakeBackend(t, f, lambdabe.Options{})
		_, _, err := be.Invoke(context.Background(), task(t, 1, map[string]any{"i": 1}))
		var fe *lambdabe.FunctionError
		if err == nil || errors.As(err, &fe) || !strings.Contains(err.Error(), "InvalidRequestContentException") {
			t.Fatalf("err = %v", err)
		}
		if f.count() != 1 {
			t.Errorf("%d requests", f.count())
		}
	})
	t.Run("budget spent", func(t *testing.T) {
		f := newFakeLambda(t, throttled)
		be := fakeBackend(t, f, lambdabe.Options{MaxRetries: 3})
		_, _, err := be.Invoke(context.Background(), task(t, 1, map[string]any{"i": 1}))
		if err == nil || !strings.Contains(err.Error(), "after 3 re-send(s)") || !strings.Contains(err.Error(), "TooManyRequests") {
			t.Fatalf("err = %v", err)
		}
		if f.count() != 4 {
			t.Errorf("%d requests, want 4", f.count())
		}
	})
	t.Run("cancelled while backing off", func(t *testing.T) {
		f := newFakeLambda(t, throttled)
		be := fakeBackend(t, f, lambdabe.Options{MaxRetries: 1000, RetryBase: 20 * time.Millisecond, RetryMax: time.Hour})
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		_, _, err := be.Invoke(ctx, task(t, 1, map[string]any{"i": 1}))
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want the context's", err)
		}
	})
	t.Run("task too large", func(t *testing.T) {
		f := newFakeLambda(t, ok200)
		be := fakeBackend(t, f, lambdabe.Options{})
		_, _, err := be.Invoke(context.Background(), task(t, 1, map[string]any{"i": 1, "marker": strings.Repeat("x", operators.MaxPayload)}))
		if err == nil || !strings.Contains(err.Error(), "over the 262144-byte limit") {
			t.Fatalf("err = %v", err)
		}
		if f.count() != 0 {
			t.Errorf("%d requests", f.count())
		}
	})
	t.Run("not a result", func(t *testing.T) {
		f := newFakeLambda(t, answer{status: 200, body: "Task timed out after 1.00 seconds"})
		be := fakeBackend(t, f, lambdabe.Options{})
		_, _, err := be.Invoke(context.Background(), task(t, 1, map[string]any{"i": 1}))
		if err == nil || !strings.Contains(err.Error(), "not a result") || !strings.Contains(err.Error(), "Task timed out") {
			t.Fatalf("err = %v", err)
		}
	})
}

// TestInvokeAWS checks the request and answer shapes of the service itself:
// the configured function name and region, the X-Amz-Function-Error header and the
// base64 log tail with its billed duration.
func TestInvokeAWS(t *testing.T) {
	noCredentials(t)
	tail := "START RequestId: 1\nboom\nEND RequestId: 1\nREPORT RequestId: 1\tDuration: 41.20 ms\tBilled Duration: 42 ms\tMemory Size: 2048 MB\n"
	f := newFakeLambda(t,
		answer{status: 200, headers: map[string]string{"X-Amz-Function-Error": "Unhandled", "X-Amz-Log-Result": base64.StdEncoding.EncodeToString([]byte(tail))},
			body: `{"errorType":"Runtime.OutOfMemory","errorMessage":"RequestId: 1 Error: Runtime exited with error: signal: killed"}`},
		answer{status: 200, headers: map[string]string{"X-Amz-Log-Result": base64.StdEncoding.EncodeToString([]byte("REPORT RequestId: 2\tBilled Duration: 7 ms\n"))},
			body: `{"output":{"square":9},"metrics":{"i":3}}`},
	)
	t.Setenv("AWS_ENDPOINT_URL_LAMBDA", f.URL)
	be, err := lambdabe.New(context.Background(), lambdabe.Options{
		Function: "stratus-fn", Region: "eu-west-1", MemoryMB: 2048,
		Credentials: credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", ""),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	if be.Slots() != 100 {
		t.Errorf("Slots = %d, want the default 100", be.Slots())
	}
	_, usage, err := be.Invoke(context.Background(), task(t, 3, map[string]any{"i": 3}))
	var fe *lambdabe.FunctionError
	if !errors.As(err, &fe) {
		t.Fatalf("err = %v", err)
	}
	if fe.Kind != "Unhandled" || fe.Type != "Runtime.OutOfMemory" || fe.Function != "stratus-fn" || fe.LogTail != tail || usage.LogTail != tail {
		t.Errorf("function error %+v", fe)
	}
	if usage.Duration != 42*time.Millisecond || usage.MemoryMB != 2048 {
		t.Errorf("usage %+v, want the billed 42ms at 2048 MB", usage)
	}
	r := f.requests[0]
	if r.URL.Path != "/2015-03-31/functions/stratus-fn/invocations" {
		t.Errorf("path %s", r.URL.Path)
	}
	if a := r.Header.Get("Authorization"); !strings.Contains(a, "AKIDTEST/") || !strings.Contains(a, "/eu-west-1/lambda/") {
		t.Errorf("authorization %q", a)
	}
	if r.Header.Get("X-Amz-Invocation-Type") != "RequestResponse" {
		t.Errorf("invocation type %q", r.Header.Get("X-Amz-Invocation-Type"))
	}

	res, usage, err := be.Invoke(context.Background(), task(t, 3, map[string]any{"i": 3}))
	if err != nil {
		t.Fatal(err)
	}
	if string(res.Output) != `{"square":9}` || res.Metrics["i"] != 3 || usage.Duration != 7*time.Millisecond {
		t.Errorf("result %+v, usage %+v", res, usage)
	}
}

func TestNewRefusesBadOptions(t *testing.T) {
	noCredentials(t)
	for _, tc := range []struct {
		o    lambdabe.Options
		want string
	}{
		{lambdabe.Options{Region: "us-east-1"}, "no function name"},
		{lambdabe.Options{Function: "f"}, "no AWS region"},
		{lambdabe.Options{Endpoints: []string{"127.0.0.1:9000"}}, "not an http:// or https:// URL"},
	} {
		_, err := lambdabe.New(context.Background(), tc.o)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%+v) = %v, want %q", tc.o, err, tc.want)
		}
	}
}

func TestEndpointsFromEnv(t *testing.T) {
	t.Setenv(lambdabe.EnvEndpoints, " http://127.0.0.1:1, ,http://127.0.0.1:2 ")
	got := lambdabe.EndpointsFromEnv()
	if len(got) != 2 || got[0] != "http://127.0.0.1:1" || got[1] != "http://127.0.0.1:2" {
		t.Errorf("EndpointsFromEnv = %q", got)
	}
}
