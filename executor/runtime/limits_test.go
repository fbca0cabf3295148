package runtime_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	goruntime "runtime"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stratus-ml/stratus/executor/runtime"
)

const lambdaBlock = `
backend "lambda" {
  region  = "eu-west-1"
  function = "stratus"
  bucket  = "s3://b/p"
  psstore = ["10.0.0.5:7000", "10.0.0.6:7000"]
}
`

// awsEnv points the AWS SDK at url for Lambda, with static credentials, so the
// real client talks HTTP to a server the test runs.
func awsEnv(t *testing.T, url string) {
	t.Setenv("AWS_ENDPOINT_URL_LAMBDA", url)
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("STRATUS_LAMBDA_ENDPOINTS", "")
}

// TestPlanLimitsLambdaAccount reads the account's concurrency with the SDK's
// GetAccountSettings (answered by a test server in Lambda's REST-JSON form):
// the unreserved concurrency bounds the functions, and the shards are the
// block's list.
func TestPlanLimitsLambdaAccount(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || r.URL.Path != "/2016-08-19/account-settings" {
			http.Error(w, "unexpected "+r.Method+" "+r.URL.Path, http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"AccountLimit":{"ConcurrentExecutions":1000,"UnreservedConcurrentExecutions":900},"AccountUsage":{}}`))
	}))
	defer srv.Close()
	awsEnv(t, srv.URL)
	cfg, diags := load(t, lambdaBlock)
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	lim, autoMem := runtime.PlanLimits(context.Background(), cfg, "")
	if lim.Backend != "lambda" || lim.Functions != 900 || lim.Shards != 2 || lim.Cores != 0 || lim.MemoryMB != 1769 || autoMem {
		t.Fatalf("PlanLimits = %+v, %v; want 900 functions, 2 shards, 1769 MB fixed", lim, autoMem)
	}
	if lim.Why != "Lambda account concurrency 900 (GetAccountSettings)" || lim.Note != "" {
		t.Errorf("Why %q, Note %q", lim.Why, lim.Note)
	}
}

// TestPlanLimitsLambdaFallback: when GetAccountSettings fails (here the server
// refuses it), sizing assumes 100 functions and the plan gets a note saying so
// and what to set.
func TestPlanLimitsLambdaFallback(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Amzn-Errortype", "AccessDeniedException")
		w.WriteHeader(http.StatusForbidden)
		_, _ = w.Write([]byte(`{"message":"not allowed"}`))
	}))
	defer srv.Close()
	awsEnv(t, srv.URL)
	cfg, diags := load(t, lambdaBlock)
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	lim, _ := runtime.PlanLimits(context.Background(), cfg, "")
	if lim.Functions != 100 || !strings.Contains(lim.Why, "(assumed)") {
		t.Fatalf("PlanLimits = %+v; want 100 functions, assumed", lim)
	}
	for _, s := range []string{"Could not read the account's Lambda concurrency", "GetAccountSettings", "sizing assumes 100", "Set max_concurrency"} {
		if !strings.Contains(lim.Note, s) {
			t.Errorf("note %q does not say %q", lim.Note, s)
		}
	}
}

// TestPlanLimitsLocal: cores and slots bound the local backend; shards and
// memory are the planner's unless the block sets them.
func TestPlanLimitsLocal(t *testing.T) {
	cfg, _ := load(t, ``)
	lim, autoMem := runtime.PlanLimits(context.Background(), cfg, "")
	if lim.Backend != "local" || lim.Cores != goruntime.GOMAXPROCS(0) || lim.Functions != 4*goruntime.NumCPU() || lim.Shards != 0 || lim.MemoryMB != 0 || !autoMem {
		t.Fatalf("default local PlanLimits = %+v, %v", lim, autoMem)
	}
	cfg, diags := load(t, `backend "local" {
  max_concurrency = 3
  psstore_shards  = 2
  memory_mb       = 512
}`)
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	lim, autoMem = runtime.PlanLimits(context.Background(), cfg, "")
	if lim.Functions != 3 || lim.Shards != 2 || lim.MemoryMB != 512 || autoMem || !strings.Contains(lim.Why, "max_concurrency 3") {
		t.Fatalf("set local PlanLimits = %+v, %v", lim, autoMem)
	}
	_, diags = load(t, `backend "local" {
  psstore_shards = "auto"
  memory_mb      = "many"
}`)
	if !diags.HasErrors() || !strings.Contains(diags.Error(), `memory_mb must be a whole number of at least 128, or "auto"`) {
		t.Fatalf("memory_mb = \"many\": %v", diags)
	}
}

// TestOfflineLimitsMakeNoRequest: the limits graph plans with ask neither
// Lambda (GetAccountSettings) nor the psstore cluster, though both are there to
// ask (a token is set and a seed listens): the functions are assumed, the
// shards are the block's list.
func TestOfflineLimitsMakeNoRequest(t *testing.T) {
	var asked atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked.Add(1)
		http.Error(w, "no request expected", http.StatusForbidden)
	}))
	defer srv.Close()
	awsEnv(t, srv.URL)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	var dialled atomic.Int32
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			dialled.Add(1)
			cancel() // seen: PlanLimits need not wait for the seed below
			c.Close()
		}
	}()
	t.Setenv(runtime.EnvToken, "tok")
	cfg, diags := load(t, strings.Replace(lambdaBlock, `"10.0.0.5:7000"`, `"`+lis.Addr().String()+`"`, 1))
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	lim, autoMem := runtime.OfflineLimits(cfg, "")
	if lim.Backend != "lambda" || lim.Functions != 100 || lim.Shards != 2 || lim.MemoryMB != 1769 || autoMem || lim.Why != "Lambda concurrency 100 (assumed)" {
		t.Errorf("OfflineLimits = %+v, %v; want 100 assumed functions, 2 shards, 1769 MB fixed", lim, autoMem)
	}
	if a, d := asked.Load(), dialled.Load(); a != 0 || d != 0 {
		t.Errorf("OfflineLimits made %d Lambda requests and %d psstore connections, want none", a, d)
	}
	// PlanLimits with the same settings asks both: the seams this test
	// watches are the ones it would use.
	runtime.PlanLimits(ctx, cfg, "")
	if asked.Load() == 0 || dialled.Load() == 0 {
		t.Fatalf("PlanLimits made %d Lambda requests and %d psstore connections; the test watches the wrong seams", asked.Load(), dialled.Load())
	}
}
