package main

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	goruntime "runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stratus-ml/stratus/blob/s3blob/miniotest"
	lambdabe "github.com/stratus-ml/stratus/executor/lambda"
	"github.com/stratus-ml/stratus/executor/lambda/lambdatest"
	"github.com/stratus-ml/stratus/executor/runtime"
	"github.com/stratus-ml/stratus/internal/testtools"
	"github.com/stratus-ml/stratus/psstore"
)

// serverless is the real serverless stack on this machine, as a user meets it: a
// MinIO server as S3, psstore shards run by `stratus psstore serve`, and Lambda
// Runtime Interface Emulators running the function binary `stratus deploy`
// builds, isolated from this process (they share nothing with the client but the
// bucket and the shards).
type serverless struct {
	t      *testing.T
	bin    string // the stratus binary, built as a user builds it
	s3     *miniotest.Server
	bucket string
	token  string
	shards []*shardProc
	ems    []*lambdatest.Emulator
	root   string // a copy of pipelines/ and testdata/
}

// shardProc is one `stratus psstore serve` process.
type shardProc struct {
	addr, dir string
	cmd       *exec.Cmd
	done      chan struct{}
	out       *bytes.Buffer
}

// builtStratusDir is the directory buildStratus built into ("" before it ran);
// TestMain removes it after the tests (each test binary's build is 90 MB, and
// /tmp is shared by every run on the machine).
var builtStratusDir string

// buildStratus builds the stratus binary (no test operators), once per test binary.
var buildStratus = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "stratus-bin-")
	if err != nil {
		return "", err
	}
	builtStratusDir = dir
	bin := filepath.Join(dir, "stratus")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

func startServerless(t *testing.T, emulators int, fnTimeout time.Duration) *serverless {
	t.Helper()
	bin, err := buildStratus()
	if err != nil {
		t.Fatal(err)
	}
	s := &serverless{t: t, bin: bin, s3: miniotest.Start(t), token: "e2e-" + fmt.Sprint(time.Now().UnixNano())}
	s.bucket = s.s3.NewBucket(t)
	for range 2 {
		s.shards = append(s.shards, s.startShard(testtools.FreeAddr(t), t.TempDir()))
	}
	s.root = copyPipelines(t)
	// The function is the zip `stratus deploy -out` writes, for this machine's
	// architecture; the emulators run its bootstrap.
	zipPath := filepath.Join(t.TempDir(), "function.zip")
	deploy := filepath.Join(s.root, "deploy")
	copyDir(t, filepath.Join(s.root, "pipelines", "a9a"), deploy)
	s.writeBackend(deploy, "deploy", "")
	s.run(deploy, "deploy", "-out", zipPath, "-source", repoRoot(t))
	bootstrap := extractBootstrap(t, zipPath)
	s.ems = lambdatest.Start(t, bootstrap, emulators, lambdatest.Options{
		Isolated: true,
		Timeout:  fnTimeout,
		Env: []string{
			"AWS_ACCESS_KEY_ID=" + s.s3.AccessKey, "AWS_SECRET_ACCESS_KEY=" + s.s3.SecretKey,
			"AWS_REGION=" + s.s3.Region, "AWS_DEFAULT_REGION=" + s.s3.Region,
			"AWS_ENDPOINT_URL_S3=" + s.s3.Endpoint,
		},
	})
	return s
}

// startShard starts `stratus psstore serve` on addr with its data in dir and the
// extra flags (TLS), stopped with SIGTERM when the test ends.
func (s *serverless) startShard(addr, dir string, extra ...string) *shardProc {
	s.t.Helper()
	p := &shardProc{addr: addr, dir: dir, done: make(chan struct{}), out: &bytes.Buffer{}}
	p.cmd = exec.Command(s.bin, append([]string{"psstore", "serve", "--addr", addr, "--data-dir", dir}, extra...)...)
	p.cmd.Env = append(os.Environ(), runtime.EnvToken+"="+s.token)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	s.t.Cleanup(func() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		<-p.done
	})
	if err := testtools.WaitTCP(addr, p.done, time.Minute); err != nil {
		s.t.Fatal(err)
	}
	return p
}

// env is the client's environment: AWS credentials and the S3 endpoint of the
// MinIO server, the emulators' URLs, the shards' token.
func (s *serverless) env() []string {
	return append(os.Environ(), "NO_COLOR=1",
		"AWS_ACCESS_KEY_ID="+s.s3.AccessKey, "AWS_SECRET_ACCESS_KEY="+s.s3.SecretKey,
		"AWS_REGION="+s.s3.Region, "AWS_ENDPOINT_URL_S3="+s.s3.Endpoint,
		lambdabe.EnvEndpoints+"="+strings.Join(lambdatest.URLs(s.ems), ","),
		runtime.EnvToken+"="+s.token)
}

func (s *serverless) shardAddrs() []string {
	var out []string
	for _, p := range s.shards {
		out = append(out, p.addr)
	}
	return out
}

// writeBackend writes the pipeline's backend "lambda" block into dir/backend.hcl.
func (s *serverless) writeBackend(dir, prefix, extra string) {
	s.t.Helper()
	arch := "x86_64"
	if goruntime.GOARCH == "arm64" {
		arch = "arm64"
	}
	q := make([]string, len(s.shards))
	for i, a := range s.shardAddrs() {
		q[i] = fmt.Sprintf("%q", a)
	}
	hcl := fmt.Sprintf(`backend "lambda" {
  function     = "stratus"
  region       = %q
  bucket       = "s3://%s/%s"
  architecture = %q
  psstore      = [%s]
%s}
`, s.s3.Region, s.bucket, prefix, arch, strings.Join(q, ", "), extra)
	if err := os.WriteFile(filepath.Join(dir, "backend.hcl"), []byte(hcl), 0o644); err != nil {
		s.t.Fatal(err)
	}
}

// run runs the stratus binary in dir and returns its combined output.
func (s *serverless) run(dir string, args ...string) string {
	s.t.Helper()
	out, err := s.exec(dir, args...)
	if err != nil {
		s.t.Fatalf("stratus %s in %s: %v\n%s", strings.Join(args, " "), dir, err, out)
	}
	return out
}

func (s *serverless) exec(dir string, args ...string) (string, error) {
	cmd := exec.Command(s.bin, args...)
	cmd.Dir = dir
	cmd.Env = s.env()
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// outputs returns `stratus output -json` of dir as name → value.
func (s *serverless) outputs(dir string) map[string]any {
	s.t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(s.run(dir, "output", "-json")), &m); err != nil {
		s.t.Fatal(err)
	}
	return m
}

// TestServerless applies every example pipeline on the serverless stack and on the
// local backend and checks what a user moving to Lambda expects: the same metrics
// (within 1%), models in the bucket, nothing in the local blob store, functions
// whose lifetime is shorter than the training handing over to new generations, and
// a second apply that reuses everything.
func TestServerless(t *testing.T) {
	if testing.Short() {
		t.Skip("starts MinIO, psstore shards and Lambda emulators")
	}
	// Five emulators: a train stage's four workers and its evaluator at once.
	s := startServerless(t, 5, 20*time.Second)
	// The local runs get their own copy of the tree, without backend blocks.
	localRoot := copyPipelines(t)
	for _, tc := range []struct {
		pipeline string
		metrics  []string // outputs compared with the local backend's
		model    string   // an output holding a model URI
		handover bool     // training outlasts the functions' 2s lifetime
	}{
		{"a9a", []string{"test_logloss", "accuracy"}, "model", false},
		{"criteo", []string{"test_logloss"}, "", false},
		{"a9a-tune", []string{"best_logloss", "final_logloss"}, "", true},
		// Matrix factorization by ALS: the model and the solved blocks through
		// the shards' KV face, the ratings read from the bucket.
		{"ratings", []string{"test_rmse", "validation_rmse"}, "model", false},
	} {
		t.Run(tc.pipeline, func(t *testing.T) {
			local := filepath.Join(localRoot, "pipelines", tc.pipeline)
			remote := filepath.Join(s.root, "pipelines", tc.pipeline)
			// Workers live 2s: every training hands over to new generations.
			s.writeBackend(remote, tc.pipeline, "  timeout  = \"20s\"\n  lifetime = \"2s\"\n  psstore_hourly_usd = 0.05\n")

			s.run(local, "apply", "-auto-approve")
			want := s.outputs(local)

			log := s.run(remote, "apply", "-auto-approve")
			if !strings.Contains(log, "Apply complete!") {
				t.Fatalf("apply on lambda:\n%s", log)
			}
			// The cost is the bill's (REPORT lines), labelled so, with the shard hosts.
			if !strings.Contains(log, "  LAMBDA COST") || strings.Contains(log, "ESTIMATED LAMBDA COST") || !strings.Contains(log, "psstore hosts: 2 × ") {
				t.Errorf("the summary lacks the billed Lambda cost or the psstore hosts:\n%s", log)
			}
			if tc.pipeline == "ratings" && !strings.Contains(log, "solver als (auto: ") {
				t.Errorf("the matrix factorization did not train with ALS on lambda:\n%s", log)
			}
			if tc.handover && !strings.Contains(log, "relaunched as generation") {
				t.Errorf("no worker reached its 2s lifetime and handed over:\n%s", log)
			}
			if tc.pipeline == "a9a" {
				// The first apply starts the emulators' functions: its records
				// keep the cold starts (Init Duration), for later estimates.
				cold := 0.0
				for _, st := range []string{"load.adult", "normalize.adult", "train.lr"} {
					out := s.run(remote, "state", "show", st)
					if m := regexp.MustCompile(`(?m)^  cold_starts = (\d+)$`).FindStringSubmatch(out); m != nil {
						n, _ := strconv.Atoi(m[1])
						cold += float64(n)
						t.Logf("%s: %d cold start(s); %s", st, n, strings.Join(regexp.MustCompile(`(?m)^  (invocations|cold_start_ms) = \S+$`).FindAllString(out, -1), ","))
					} else {
						t.Errorf("%s records no cold starts:\n%s", st, out)
					}
					if strings.Contains(out, "cold_starts = 0\n") == strings.Contains(out, "cold_start_ms = ") {
						t.Errorf("%s: a cold start count and its mean disagree:\n%s", st, out)
					}
				}
				if cold == 0 {
					t.Errorf("the first apply on fresh emulators recorded no cold start")
				}
			}
			got := s.outputs(remote)
			for _, m := range tc.metrics {
				w, g := want[m].(float64), got[m].(float64)
				t.Logf("%s: lambda %.5f, local %.5f", m, g, w)
				if math.Abs(g-w) > 0.01*math.Abs(w) {
					t.Errorf("%s on lambda = %.5f, local %.5f: more than 1%% apart", m, g, w)
				}
			}
			if tc.model != "" {
				if uri, _ := got[tc.model].(string); !strings.HasPrefix(uri, "s3://"+s.bucket+"/"+tc.pipeline+"/") {
					t.Errorf("model %q is not in the backend's bucket", uri)
				}
			}
			if _, err := os.Stat(filepath.Join(remote, ".stratus", "blobs")); !os.IsNotExist(err) {
				t.Errorf("the lambda apply wrote the local blob store (%v)", err)
			}
			if out, err := s.exec(remote, "plan", "-detailed-exitcode"); err != nil || !strings.Contains(out, "0 to run, 0 to rerun") {
				t.Errorf("the plan after the apply is not all cached (%v):\n%s", err, out)
			}
		})
	}
	// Switching a pipeline between backends reruns what the other backend cannot
	// read, both ways; nothing is handed to functions as a path on this machine.
	t.Run("switch", func(t *testing.T) {
		dir := filepath.Join(localRoot, "pipelines", "a9a") // applied locally above
		s.writeBackend(dir, "switch", "")
		out, _ := s.exec(dir, "plan")
		for _, st := range []string{"load.adult", "normalize.adult", "train.lr"} {
			if !regexp.MustCompile(regexp.QuoteMeta(st) + `\s+rerun: outputs are in file:///\S+/\.stratus/blobs, which backend "lambda" cannot read`).MatchString(out) {
				t.Errorf("after switching to lambda, %s is not planned to rerun for its file:// outputs:\n%s", st, out)
			}
		}
		s.run(dir, "apply", "-auto-approve")
		if uri, _ := s.outputs(dir)["model"].(string); !strings.HasPrefix(uri, "s3://"+s.bucket+"/switch/") {
			t.Errorf("model after the switch = %q", uri)
		}
		if err := os.Remove(filepath.Join(dir, "backend.hcl")); err != nil {
			t.Fatal(err)
		}
		out, _ = s.exec(dir, "plan")
		if !strings.Contains(out, "rerun: outputs are in s3://"+s.bucket+"/switch, which backend \"local\" cannot read") {
			t.Errorf("after switching back to local, the stages are not planned to rerun:\n%s", out)
		}
		s.run(dir, "apply", "-auto-approve")
		if uri, _ := s.outputs(dir)["model"].(string); !strings.HasPrefix(uri, "file://") {
			t.Errorf("model after switching back = %q", uri)
		}
	})
	t.Run("shared", func(t *testing.T) { testSharedCacheOnLambda(t, s) })
	// Elastic training on Lambda: with workers left "auto" the train stage
	// starts at one worker function and adds more while the loss falls fast
	// per dollar; its metrics are those of one fixed worker on the local
	// backend within 1%. The backend block lists one of the cluster's two
	// shards as its seed: the psstore hosts are priced by the members of the
	// cluster's shard map, not by the list.
	t.Run("elastic", func(t *testing.T) {
		// Greeting both shards makes them one cluster (the earlier subtests'
		// applies did; this subtest may run alone).
		c, err := psstore.Dial(t.Context(), s.shardAddrs(), psstore.WithToken(s.token))
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
		src := func(workers string) string {
			return `load "adult" {
  source      = "../testdata/a9a"
  test_source = "../testdata/a9a.t"
  format      = "libsvm"
}
train "lr" {
  input         = load.adult
  solver        = "sgd"` + workers + `
  minibatch     = 100
  optimizer     = "adagrad"
  learning_rate = 0.05
  l2            = 0.0001
  epochs        = 10
  eval_interval = "50ms"
}
output "test_logloss" {
  value = train.lr.metrics.test_logloss
}
`
		}
		remote, local := filepath.Join(s.root, "elastic"), filepath.Join(s.root, "elastic-local")
		for dir, workers := range map[string]string{remote: "", local: "\n  workers       = 1"} {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "main.hcl"), []byte(src(workers)), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		s.writeBackend(remote, "elastic", "  psstore_hourly_usd = 0.05\n")
		block, err := os.ReadFile(filepath.Join(remote, "backend.hcl"))
		if err != nil {
			t.Fatal(err)
		}
		seeds := fmt.Sprintf("psstore      = [%q, %q]", s.shards[0].addr, s.shards[1].addr)
		if !bytes.Contains(block, []byte(seeds)) {
			t.Fatalf("the backend block does not list the two shards as expected:\n%s", block)
		}
		block = bytes.Replace(block, []byte(seeds), []byte(fmt.Sprintf("psstore      = [%q]", s.shards[1].addr)), 1)
		if err := os.WriteFile(filepath.Join(remote, "backend.hcl"), block, 0o644); err != nil {
			t.Fatal(err)
		}
		// The plan prices the two hosts for the train stage's estimated time.
		var planned struct {
			Stages []struct {
				Address  string
				Estimate struct {
					PSStoreUSD float64 `json:"psstore_usd"`
				}
			}
		}
		if err := json.Unmarshal([]byte(s.run(remote, "plan", "-json")), &planned); err != nil {
			t.Fatal(err)
		}
		for _, st := range planned.Stages {
			if (st.Address == "train.lr") != (st.Estimate.PSStoreUSD > 0) {
				t.Errorf("plan: %s psstore hosts $%g; want them priced for train.lr only", st.Address, st.Estimate.PSStoreUSD)
			}
		}
		s.run(local, "apply", "-auto-approve")
		want := s.outputs(local)["test_logloss"].(float64)
		log := s.run(remote, "apply", "-auto-approve")
		if !regexp.MustCompile(`(?m)train\.lr: solver sgd \(asked for\): 1 workers \(elastic: 1 to 4 by loss improvement per dollar\)`).MatchString(log) {
			t.Errorf("the train stage did not start elastic at one worker of four:\n%s", log)
		}
		if !regexp.MustCompile(`(?m)train\.lr: workers 1 → 2: loss −[0-9.]+%/epoch at \$0\.[0-9]+/worker-min$`).MatchString(log) {
			t.Errorf("the train stage did not scale out:\n%s", log)
		}
		if !strings.Contains(log, "psstore hosts: 2 × ") {
			t.Errorf("the psstore hosts are not the cluster's two members (the block lists one seed):\n%s", log)
		}
		for _, l := range regexp.MustCompile(`(?m)^.*train\.lr: workers \d+ → \d+: .*$`).FindAllString(log, -1) {
			t.Log(l)
		}
		got := s.outputs(remote)["test_logloss"].(float64)
		t.Logf("test logloss: elastic on lambda %.5f, one fixed worker on local %.5f", got, want)
		if got > want*1.01 {
			t.Errorf("test logloss %.5f elastic on lambda, %.5f with one fixed worker on local: more than 1%% worse", got, want)
		}
	})
	served := 0
	for _, e := range s.ems {
		served += strings.Count(e.Log(), "START RequestId")
	}
	if served == 0 {
		t.Error("the emulators served no invocation")
	}
}

// copyPipelines copies pipelines/ and testdata/ into a temporary root, so the
// pipelines' relative sources resolve and their .stratus directories are the test's.
func copyPipelines(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	repo := repoRoot(t)
	copyDir(t, filepath.Join(repo, "pipelines"), filepath.Join(root, "pipelines"))
	if err := os.Symlink(filepath.Join(repo, "testdata"), filepath.Join(root, "testdata")); err != nil {
		t.Fatal(err)
	}
	return root
}

func repoRoot(t *testing.T) string {
	t.Helper()
	root, ok := testtools.RepoRoot()
	if !ok {
		t.Fatal("no go.mod above the test's directory")
	}
	return root
}

// copyDir copies the regular files under from to to, skipping .stratus directories.
func copyDir(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.Walk(from, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if info.IsDir() && info.Name() == ".stratus" {
			return filepath.SkipDir
		}
		rel, _ := filepath.Rel(from, p)
		dst := filepath.Join(to, rel)
		if info.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func extractBootstrap(t *testing.T, zipPath string) string {
	t.Helper()
	zr, err := zip.OpenReader(zipPath)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	for _, f := range zr.File {
		if f.Name != "bootstrap" {
			continue
		}
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		out := filepath.Join(t.TempDir(), "bootstrap")
		w, err := os.OpenFile(out, os.O_CREATE|os.O_WRONLY, 0o755)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(w, rc); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		return out
	}
	t.Fatalf("%s has no bootstrap", zipPath)
	return ""
}
