// Package lambda is the AWS Lambda backend: each task attempt is one synchronous
// Invoke (RequestResponse, LogType Tail) of the deployed Stratus function, whose
// bootstrap (lambda-runtime) dispatches the Task to the same operator registry the
// local backend calls in a goroutine.
//
// Endpoints point the client at one or more Lambda Runtime Interface Emulators
// instead of AWS; each serves one invocation at a time, so the backend keeps
// exactly one invocation in flight per endpoint.
package lambda

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	awslambda "github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/stratus-ml/stratus/executor"
	"github.com/stratus-ml/stratus/operators"
)

// EnvEndpoints names the environment variable holding emulator endpoints, comma
// separated; when set it overrides the backend block's `endpoints`.
const EnvEndpoints = "STRATUS_LAMBDA_ENDPOINTS"

// EmulatorFunction is the function name the Lambda Runtime Interface Emulator
// serves (its only route is /2015-03-31/functions/function/invocations).
const EmulatorFunction = "function"

// Options configure the backend.
type Options struct {
	// Function is the deployed function's name or ARN. Required unless Endpoints
	// are set.
	Function string
	// Region is the AWS region; empty means the SDK's default chain (AWS_REGION,
	// the shared config), or us-east-1 with Endpoints.
	Region string
	// MemoryMB is the function's memory, for GB-seconds (default 1769).
	MemoryMB int
	// Endpoints are base URLs (http://127.0.0.1:9000) of emulators to invoke
	// instead of the AWS endpoint, one invocation in flight on each.
	Endpoints []string
	// EndpointFunction is the function name sent to Endpoints (default
	// EmulatorFunction).
	EndpointFunction string
	// MaxConcurrency bounds invocations in flight without Endpoints (default 100).
	MaxConcurrency int
	// FunctionTimeout is the function's configured timeout (default 15m). An
	// invocation the caller abandons keeps its endpoint until the function
	// replies or this much time passes.
	FunctionTimeout time.Duration
	// MaxRetries bounds the re-sends of one invocation that was throttled (429) or
	// met a 500/503/504 or a network error (default 8). This budget is the
	// transport's own, apart from the runner's task retries: a throttled request
	// never ran the function.
	MaxRetries int
	// RetryBase and RetryMax shape the backoff: before re-send n (from 0) the
	// backend sleeps a uniformly random time in [0, min(RetryMax, RetryBase·2ⁿ)]
	// — "full jitter" (defaults 100ms and 10s).
	RetryBase, RetryMax time.Duration
	// CloseTimeout bounds how long Close waits for abandoned invocations still
	// holding an endpoint (default 10s).
	CloseTimeout time.Duration
	// Credentials override the SDK's default chain. With Endpoints and no
	// credentials anywhere, static dummy credentials are used (emulators do not
	// check signatures).
	Credentials aws.CredentialsProvider
	// HTTPClient overrides the SDK's HTTP client.
	HTTPClient awslambda.HTTPClient
}

// EndpointsFromEnv returns the endpoints in STRATUS_LAMBDA_ENDPOINTS, or nil.
func EndpointsFromEnv() []string {
	var out []string
	for _, e := range strings.Split(os.Getenv(EnvEndpoints), ",") {
		if e = strings.TrimSpace(e); e != "" {
			out = append(out, e)
		}
	}
	return out
}

// Backend invokes the Stratus function on AWS Lambda or on emulators.
type Backend struct {
	client *awslambda.Client
	opts   Options
	pool   endpointPool // nil without Endpoints
	wg     sync.WaitGroup
}

var _ executor.Backend = (*Backend)(nil)

// New returns a backend for opts. It loads the AWS configuration (region,
// credentials) but makes no request.
func New(ctx context.Context, opts Options) (*Backend, error) {
	if opts.MemoryMB <= 0 {
		opts.MemoryMB = executor.DefaultMemoryMB
	}
	if opts.MaxConcurrency <= 0 {
		opts.MaxConcurrency = 100
	}
	if opts.EndpointFunction == "" {
		opts.EndpointFunction = EmulatorFunction
	}
	if opts.FunctionTimeout <= 0 {
		opts.FunctionTimeout = 15 * time.Minute
	}
	if opts.MaxRetries <= 0 {
		opts.MaxRetries = 8
	}
	if opts.RetryBase <= 0 {
		opts.RetryBase = 100 * time.Millisecond
	}
	if opts.RetryMax <= 0 {
		opts.RetryMax = 10 * time.Second
	}
	if opts.CloseTimeout <= 0 {
		opts.CloseTimeout = 10 * time.Second
	}
	emulated := len(opts.Endpoints) > 0
	if !emulated && opts.Function == "" {
		return nil, errors.New("lambda backend: no function name: set `function` in the backend \"lambda\" block (and run `stratus deploy`)")
	}
	for _, e := range opts.Endpoints {
		if !strings.HasPrefix(e, "http://") && !strings.HasPrefix(e, "https://") {
			return nil, fmt.Errorf("lambda backend: endpoint %q is not an http:// or https:// URL", e)
		}
	}

	var lo []func(*config.LoadOptions) error
	if opts.Region != "" {
		lo = append(lo, config.WithRegion(opts.Region))
	} else if emulated {
		lo = append(lo, config.WithDefaultRegion("us-east-1"))
	}
	if opts.Credentials != nil {
		lo = append(lo, config.WithCredentialsProvider(opts.Credentials))
	}
	if emulated {
		// Never reach for the EC2 metadata service when talking to emulators.
		lo = append(lo, config.WithEC2IMDSClientEnableState(imds.ClientDisabled))
	}
	if opts.HTTPClient != nil {
		lo = append(lo, config.WithHTTPClient(opts.HTTPClient))
	} else {
		conns := opts.MaxConcurrency
		if emulated {
			conns = 2
		}
		lo = append(lo, config.WithHTTPClient(awshttp.NewBuildableClient().WithTransportOptions(func(t *http.Transport) {
			t.MaxIdleConnsPerHost = conns
		})))
	}
	cfg, err := config.LoadDefaultConfig(ctx, lo...)
	if err != nil {
		return nil, fmt.Errorf("lambda backend: load AWS configuration: %w", err)
	}
	if cfg.Region == "" {
		return nil, errors.New("lambda backend: no AWS region: set `region` in the backend \"lambda\" block, or AWS_REGION")
	}
	if emulated && opts.Credentials == nil {
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := cfg.Credentials.Retrieve(rctx)
		cancel()
		if err != nil {
			cfg.Credentials = credentials.NewStaticCredentialsProvider("stratus-emulator", "stratus-emulator", "")
		}
	}
	client := awslambda.NewFromConfig(cfg, func(o *awslambda.Options) {
		o.Retryer = aws.NopRetryer{} // the backend retries, with its own budget
	})
	b := &Backend{client: client, opts: opts}
	if emulated {
		b.pool = newEndpointPool(opts.Endpoints)
	}
	return b, nil
}

// Name is "lambda".
func (b *Backend) Name() string { return "lambda" }

// Slots is the number of endpoints when there are, else MaxConcurrency.
func (b *Backend) Slots() int {
	if b.pool != nil {
		return cap(b.pool)
	}
	return b.opts.MaxConcurrency
}

// Close waits up to CloseTimeout for abandoned invocations still holding an
// endpoint.
func (b *Backend) Close() error {
	if !executor.WaitTimeout(&b.wg, b.opts.CloseTimeout) {
		return fmt.Errorf("lambda backend: invocations still running %s after close", b.opts.CloseTimeout)
	}
	return nil
}

// Invoke runs one attempt: it sends t as the payload of a synchronous invocation
// and decodes the function's reply. Throttling, 500/503/504 answers and network
// errors are re-sent after a jittered backoff, up to MaxRetries times; a function
// error (the handler's error or panic, or a crash: the emulator answers 502) comes
// back as a *FunctionError, with the log tail in Usage.LogTail too. Usage.Duration
// is the billed duration from the log tail when there is one, else the round
// trips'. Cancelling ctx abandons the attempt; with Endpoints the invocation keeps
// its endpoint until the function replies.
func (b *Backend) Invoke(ctx context.Context, t *operators.Task) (*operators.Result, executor.Usage, error) {
	usage := executor.Usage{MemoryMB: b.opts.MemoryMB}
	payload, err := json.Marshal(t)
	if err != nil {
		return nil, usage, fmt.Errorf("encode task %s: %w", t.Name(), err)
	}
	if err := operators.CheckSize("task "+t.Name(), payload); err != nil {
		return nil, usage, err
	}
	endpoint := ""
	if b.pool != nil {
		if endpoint, err = b.pool.acquire(ctx); err != nil {
			return nil, usage, fmt.Errorf("task %s: waiting for a free endpoint: %w", t.Name(), err)
		}
	}
	held := true // endpoint is ours to release
	defer func() {
		if held && b.pool != nil {
			b.pool.release(endpoint)
		}
	}()
	for try := 0; ; try++ {
		r, abandoned := b.send(ctx, endpoint, payload)
		usage.Duration += r.elapsed
		if abandoned {
			held = false // the in-flight request releases it when the function replies
			return nil, usage, fmt.Errorf("task %s abandoned while the function runs: %w", t.Name(), ctx.Err())
		}
		if r.err == nil {
			return b.decode(t, endpoint, r, usage)
		}
		if ctx.Err() != nil {
			return nil, usage, fmt.Errorf("task %s abandoned: %w", t.Name(), ctx.Err())
		}
		status := 0
		var re *awshttp.ResponseError
		if errors.As(r.err, &re) {
			status = re.HTTPStatusCode()
		}
		if status == http.StatusBadGateway {
			return b.crashed(t, endpoint, r, usage)
		}
		if !retryable(r.err, status) || try >= b.opts.MaxRetries {
			return nil, usage, b.invokeError(t, endpoint, r.err, try)
		}
		if err := sleep(ctx, b.backoff(try)); err != nil {
			return nil, usage, fmt.Errorf("task %s abandoned while backing off (%v): %w", t.Name(), r.err, err)
		}
	}
}

// reply is the outcome of one request.
type reply struct {
	out     *awslambda.InvokeOutput
	errBody []byte // body of a non-2xx answer
	elapsed time.Duration
	err     error
}

// send makes one request. Without endpoints it runs under ctx. With an endpoint it
// runs in a goroutine under a context detached from ctx (bounded by the function
// timeout): when ctx ends first, send returns abandoned=true and the goroutine
// releases the endpoint once the function has replied, so the emulator never sees
// two invocations at once.
func (b *Backend) send(ctx context.Context, endpoint string, payload []byte) (reply, bool) {
	if endpoint == "" {
		return b.do(ctx, endpoint, payload), false
	}
	var (
		mu        sync.Mutex
		finished  bool
		abandoned bool
		ch        = make(chan reply, 1)
	)
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), b.opts.FunctionTimeout+30*time.Second)
		r := b.do(dctx, endpoint, payload)
		cancel()
		mu.Lock()
		finished = true
		left := abandoned
		mu.Unlock()
		if left {
			b.pool.release(endpoint)
			return
		}
		ch <- r
	}()
	select {
	case r := <-ch:
		return r, false
	case <-ctx.Done():
		mu.Lock()
		if finished {
			mu.Unlock()
			return <-ch, false
		}
		abandoned = true
		mu.Unlock()
		return reply{}, true
	}
}

// do sends one Invoke request.
func (b *Backend) do(ctx context.Context, endpoint string, payload []byte) reply {
	fn := b.opts.Function
	var body capturedBody
	optFns := []func(*awslambda.Options){func(o *awslambda.Options) {
		o.APIOptions = append(o.APIOptions, body.middleware)
	}}
	if endpoint != "" {
		fn = b.opts.EndpointFunction
		optFns = append(optFns, func(o *awslambda.Options) { o.BaseEndpoint = aws.String(endpoint) })
	}
	start := time.Now()
	out, err := b.client.Invoke(ctx, &awslambda.InvokeInput{
		FunctionName:   aws.String(fn),
		InvocationType: types.InvocationTypeRequestResponse,
		LogType:        types.LogTypeTail,
		Payload:        payload,
	}, optFns...)
	return reply{out: out, errBody: body.b, elapsed: time.Since(start), err: err}
}

// decode turns a 2xx reply into a result or a function error.
func (b *Backend) decode(t *operators.Task, endpoint string, r reply, usage executor.Usage) (*operators.Result, executor.Usage, error) {
	out := r.out
	if out.LogResult != nil {
		if tail, err := base64.StdEncoding.DecodeString(*out.LogResult); err == nil {
			usage.LogTail = string(tail)
			// The bill, not a guess: Lambda's own REPORT line.
			if d, ok := billedDuration(usage.LogTail); ok {
				usage.Duration = d
			}
			if mb, ok := billedMemory(usage.LogTail); ok {
				usage.MemoryMB = mb
			}
			if d, ok := initDuration(usage.LogTail); ok {
				usage.Init = d
			}
		}
	}
	p, isErr := parseErrorPayload(out.Payload)
	if out.FunctionError != nil || isErr {
		fe := &FunctionError{
			Function: b.function(), Endpoint: endpoint, Stage: t.Stage, Task: t.Name(), Kind: "Handled",
			Type: p.Type, Message: p.message(), Stack: p.frames(), LogTail: usage.LogTail,
		}
		if out.FunctionError != nil {
			fe.Kind = *out.FunctionError
		}
		if !isErr {
			fe.Message = "function error with reply " + snippet(out.Payload)
		}
		return nil, usage, fe
	}
	var res operators.Result
	if err := json.Unmarshal(out.Payload, &res); err != nil {
		where := ""
		if endpoint != "" {
			where = " at " + endpoint
		}
		return nil, usage, fmt.Errorf("stage %s: task %s: function %s%s replied with something that is not a result (%v): %s", t.Stage, t.Name(), b.function(), where, err, snippet(out.Payload))
	}
	if usage.Init == 0 && res.ColdStart > 0 { // no REPORT tail (the emulator): the function's own figure
		usage.Init = res.ColdStart
	}
	return &res, usage, nil
}

// crashed turns a 502 answer — the function died: the emulator's answer to a crash,
// or Lambda's to a function it cannot run — into a function error.
func (b *Backend) crashed(t *operators.Task, endpoint string, r reply, usage executor.Usage) (*operators.Result, executor.Usage, error) {
	fe := &FunctionError{Function: b.function(), Endpoint: endpoint, Stage: t.Stage, Task: t.Name(), Kind: "Unhandled"}
	if p, ok := parseErrorPayload(r.errBody); ok {
		fe.Type, fe.Message, fe.Stack = p.Type, p.message(), p.frames()
	} else {
		fe.Message = r.err.Error()
	}
	return nil, usage, fe
}

// function names the function in messages.
func (b *Backend) function() string {
	if b.opts.Function != "" {
		return b.opts.Function
	}
	return b.opts.EndpointFunction
}

// invokeError explains a request that failed for good.
func (b *Backend) invokeError(t *operators.Task, endpoint string, err error, retries int) error {
	where := ""
	if endpoint != "" {
		where = " at " + endpoint
	}
	var nf *types.ResourceNotFoundException
	if errors.As(err, &nf) {
		return fmt.Errorf("stage %s: task %s: function %s not found%s: run `stratus deploy` first: %w", t.Stage, t.Name(), b.opts.Function, where, err)
	}
	if retries > 0 {
		return fmt.Errorf("stage %s: task %s: invoke %s%s failed after %d re-send(s): %w", t.Stage, t.Name(), b.function(), where, retries, err)
	}
	return fmt.Errorf("stage %s: task %s: invoke %s%s: %w", t.Stage, t.Name(), b.function(), where, err)
}

// retryable reports whether a failed request may be re-sent: throttled, a
// transient service error, or no HTTP answer at all (a network error).
func retryable(err error, status int) bool {
	var tm *types.TooManyRequestsException
	if errors.As(err, &tm) {
		return true
	}
	var sx *types.ServiceException
	if errors.As(err, &sx) {
		return true
	}
	if status == 0 {
		// No answer: a connection refused, reset or cut before the reply.
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return false
		}
		var se *smithyhttp.RequestSendError
		var ne net.Error
		return errors.As(err, &se) || errors.As(err, &ne) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF)
	}
	switch status {
	case http.StatusTooManyRequests, http.StatusInternalServerError, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// backoff is the wait before re-send try+1: full jitter over an exponential cap.
func (b *Backend) backoff(try int) time.Duration {
	d := min(b.opts.RetryBase<<min(try, 20), b.opts.RetryMax)
	return time.Duration(rand.Int64N(int64(d) + 1))
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
