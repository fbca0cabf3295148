package runtime

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"time"

	"github.com/stratus-ml/stratus/blob/blobs"
	lambdabe "github.com/stratus-ml/stratus/executor/lambda"
	"github.com/stratus-ml/stratus/operators"
	"github.com/stratus-ml/stratus/operators/taskenv"
	"github.com/stratus-ml/stratus/planner"
	"github.com/stratus-ml/stratus/psstore"
)

// PreflightTimeout bounds each reachability check.
const PreflightTimeout = 10 * time.Second

// Preflight checks, before anything runs, that what a lambda backend block names is
// reachable from here: the bucket (a one-prefix listing with the client's
// credentials) and, when a stage that will run uses psstore, every shard (a
// greeting with the token). Each failure says which address and what to do. The
// local backend needs nothing and passes. `stratus plan` and `stratus apply` call it.
func Preflight(ctx context.Context, p *planner.Plan, backend string, getenv func(string) string) error {
	if getenv == nil {
		getenv = os.Getenv
	}
	s, diags := SettingsOf(p.Config)
	if diags.HasErrors() {
		return diags
	}
	s, err := s.override(backend)
	if err != nil || s.Type != "lambda" {
		return err
	}
	if !s.Declared {
		return nil // Open reports the missing block
	}
	return checkLambda(ctx, s, p.Config.Dir, NeedsPSStore(p), getenv)
}

func checkLambda(ctx context.Context, s *Settings, dir string, psNeeded bool, getenv func(string) string) error {
	lc := s.Lambda
	cctx, cancel := context.WithTimeout(ctx, PreflightTimeout)
	defer cancel()
	endpoints, from := lc.Endpoints, "the backend's endpoints"
	if env := lambdabe.EndpointsFromEnv(); len(env) > 0 {
		endpoints, from = env, lambdabe.EnvEndpoints
	}
	for _, e := range endpoints {
		if err := reachable(cctx, e); err != nil {
			return fmt.Errorf("backend \"lambda\": the function endpoint %s (from %s) is not reachable: %w\n\nStart the emulator there, or fix %s", e, from, err, from)
		}
	}
	st, err := blobs.Open(cctx, lc.BlobURI(), s.BlobOptions())
	if err == nil {
		_, err = st.List(cctx, ".stratus-preflight/")
	}
	if err != nil {
		return fmt.Errorf("backend \"lambda\": the bucket %s is not usable from here: %w\n\nCheck the backend's bucket and region, the AWS credentials (AWS_PROFILE or AWS_ACCESS_KEY_ID), and, for an S3-compatible server, AWS_ENDPOINT_URL_S3 or s3_endpoint", lc.BlobURI(), err)
	}
	if !psNeeded {
		return nil
	}
	if len(lc.PSStore) == 0 {
		return fmt.Errorf("backend \"lambda\": training needs psstore shards reachable from the functions: run `stratus psstore serve` on a host and list it in the backend block: psstore = [\"host:port\"]")
	}
	token := getenv(EnvToken)
	if token == "" {
		return fmt.Errorf("backend \"lambda\": the psstore shards %v need their token in %s (the --token they were started with)", lc.PSStore, EnvToken)
	}
	te := operators.TaskEnv{PSStore: lc.PSStore, Token: token}
	if te.PSStoreCA, err = lc.CAPEM(dir); err != nil {
		return err
	}
	opts, err := taskenv.PSStoreOptions(te)
	if err != nil {
		return err
	}
	// A check, not a run: a shard gets a few seconds, not the run's patience.
	opts = append(opts, psstore.WithRetry(psstore.RetryPolicy{Wait: 2 * time.Second}))
	fix := "\n\nStart the shard with `stratus psstore serve --addr HOST:PORT --data-dir DIR --token TOKEN` on a host the functions can reach, or fix the backend's psstore list"
	c, err := psstore.Dial(cctx, lc.PSStore, opts...)
	if err != nil {
		return fmt.Errorf("backend \"lambda\": %w%s%s", err, taskenv.TLSHint(te), fix)
	}
	defer c.Close()
	// With replication a client dials past a dead shard; a run should still not
	// start without it, or it has no copy to fail over to.
	for _, st := range c.ShardStatus(cctx) {
		if st.Down != nil {
			return fmt.Errorf("backend \"lambda\": psstore shard %s does not answer: %w%s", st.Addr, st.Down, fix)
		}
	}
	return nil
}

// reachable reports whether a TCP connection to the host of the URL u opens.
func reachable(ctx context.Context, u string) error {
	pu, err := url.Parse(u)
	if err != nil || pu.Host == "" {
		return fmt.Errorf("%q is not a URL", u)
	}
	host := pu.Host
	if pu.Port() == "" {
		host = net.JoinHostPort(pu.Hostname(), map[string]string{"https": "443"}[pu.Scheme]+map[string]string{"http": "80"}[pu.Scheme])
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		return err
	}
	return c.Close()
}
