// Package lambdatest runs Stratus Lambda functions under the AWS Lambda Runtime
// Interface Emulator (aws-lambda-rie) for tests: it builds a bootstrap binary from
// this module, starts emulators on free 127.0.0.1 ports and stops them when the
// test ends.
package lambdatest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stratus-ml/stratus/executor"
	"github.com/stratus-ml/stratus/internal/testtools"
)

// TestBootstrap is the package of the function serving the built-in and the
// executor's test operators.
const TestBootstrap = "./executor/testops/bootstrap"

var (
	buildMu  sync.Mutex
	shared   bool                  // set by Main: keep builds for the whole test binary
	builds   = map[string]string{} // package → binary, when shared
	buildDir string
)

// Main runs a package's tests with builds shared among them: each bootstrap is
// compiled once per test binary and deleted at the end. Use it as
//
//	func TestMain(m *testing.M) { os.Exit(lambdatest.Main(m)) }
//
// Without it, Build compiles into each test's temporary directory.
func Main(m *testing.M) int {
	buildMu.Lock()
	shared = true
	buildMu.Unlock()
	code := m.Run()
	buildMu.Lock()
	defer buildMu.Unlock()
	if buildDir != "" {
		_ = os.RemoveAll(buildDir)
	}
	buildDir, builds = "", map[string]string{}
	return code
}

// Build compiles pkg (a path relative to the module root, e.g. TestBootstrap) as a
// Lambda bootstrap for this machine (CGO_ENABLED=0, -tags lambda.norpc) and returns
// the binary's path: once per test binary under Main, else into t's temporary
// directory. Cost: a `go build`, about a second with a warm build cache.
func Build(t testing.TB, pkg string) string {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if p, ok := builds[pkg]; ok {
		return p
	}
	root, ok := testtools.RepoRoot()
	if !ok {
		t.Fatal("no go.mod above the test's directory")
	}
	var err error
	var dir string
	if shared {
		if buildDir == "" {
			if buildDir, err = os.MkdirTemp("", "stratus-bootstrap-"); err != nil {
				t.Fatal(err)
			}
		}
		dir = filepath.Join(buildDir, fmt.Sprint(len(builds)))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	} else {
		dir = t.TempDir()
	}
	out := filepath.Join(dir, "bootstrap")
	cmd := exec.Command(goTool(), "build", "-trimpath", "-tags", "lambda.norpc", "-o", out, pkg)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", pkg, err, b)
	}
	if shared {
		builds[pkg] = out
	}
	return out
}

func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return "go" // not on PATH: exec reports it
}

// Options configure emulators.
type Options struct {
	// Timeout is the function timeout (AWS_LAMBDA_FUNCTION_TIMEOUT, whole seconds;
	// default 30s).
	Timeout time.Duration
	// MemoryMB is AWS_LAMBDA_FUNCTION_MEMORY_SIZE (default 1769).
	MemoryMB int
	// Env adds KEY=VALUE pairs to the function's environment.
	Env []string
	// Isolated starts the function as Lambda would: with only Env and the
	// AWS_LAMBDA_* variables (no environment of this process), in a directory
	// holding only its own copy of the bootstrap (as /var/task), so it shares
	// nothing with the client but what Env names (credentials, endpoints).
	Isolated bool
}

// Emulator is one running aws-lambda-rie serving a bootstrap.
type Emulator struct {
	// URL is the base URL to invoke: URL + /2015-03-31/functions/function/invocations.
	URL  string
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
	log  *syncBuffer
}

// Alive reports whether the emulator process is still running.
func (e *Emulator) Alive() bool {
	select {
	case <-e.done:
		return false
	default:
		return true
	}
}

// Stop kills the emulator and its function and waits for them; the test's
// cleanup does it too.
func (e *Emulator) Stop() {
	_ = syscall.Kill(-e.cmd.Process.Pid, syscall.SIGKILL)
	<-e.done
}

// Log returns what the emulator and the function printed so far.
func (e *Emulator) Log() string { return e.log.String() }

// Start starts n emulators serving bootstrap, each on its own pair of free
// 127.0.0.1 ports (the invoke address and the Runtime API address), waits until
// each accepts connections, and stops them — the emulator and the function
// process, by process group — when the test ends. When the test failed, it logs
// the tail of each emulator's output.
func Start(t testing.TB, bootstrap string, n int, o Options) []*Emulator {
	t.Helper()
	rie := testtools.Binary(t, "aws-lambda-rie")
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Second
	}
	if o.MemoryMB <= 0 {
		o.MemoryMB = executor.DefaultMemoryMB
	}
	var ems []*Emulator
	for i := 0; i < n; i++ {
		addr, api := testtools.FreeAddr(t), testtools.FreeAddr(t)
		cmd := exec.Command(rie,
			"--runtime-interface-emulator-address", addr,
			"--runtime-api-address", api,
			bootstrap)
		cmd.Dir = filepath.Dir(bootstrap)
		base := os.Environ()
		if o.Isolated {
			task := t.TempDir()
			copyFile(t, bootstrap, filepath.Join(task, "bootstrap"))
			cmd.Args[len(cmd.Args)-1] = filepath.Join(task, "bootstrap")
			cmd.Dir = task
			base = []string{"PATH=/usr/bin:/bin", "LAMBDA_TASK_ROOT=" + task, "TZ=:UTC", "HOME=" + task}
		}
		cmd.Env = append(base,
			"AWS_LAMBDA_FUNCTION_NAME=stratus",
			fmt.Sprintf("AWS_LAMBDA_FUNCTION_TIMEOUT=%d", max(1, int(o.Timeout.Round(time.Second)/time.Second))),
			fmt.Sprintf("AWS_LAMBDA_FUNCTION_MEMORY_SIZE=%d", o.MemoryMB),
			"LOG_LEVEL=warn",
		)
		cmd.Env = append(cmd.Env, o.Env...)
		buf := &syncBuffer{}
		cmd.Stdout, cmd.Stderr = buf, buf
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			t.Fatalf("start aws-lambda-rie: %v", err)
		}
		e := &Emulator{URL: "http://" + addr, cmd: cmd, done: make(chan struct{}), log: buf}
		go func() {
			_ = cmd.Wait()
			close(e.done)
		}()
		t.Cleanup(func() {
			e.Stop() // the emulator and the function, its child
			if t.Failed() {
				t.Logf("emulator %s output (tail):\n%s", e.URL, tail(e.Log(), 40))
			}
		})
		ems = append(ems, e)
	}
	for _, e := range ems {
		waitListening(t, e)
	}
	return ems
}

// URLs returns the emulators' base URLs.
func URLs(ems []*Emulator) []string {
	out := make([]string, len(ems))
	for i, e := range ems {
		out[i] = e.URL
	}
	return out
}

func waitListening(t testing.TB, e *Emulator) {
	t.Helper()
	if err := testtools.WaitTCP(strings.TrimPrefix(e.URL, "http://"), e.done, 10*time.Second); err != nil {
		t.Fatalf("aws-lambda-rie at %s did not start: %v\n%s", e.URL, err, tail(e.Log(), 40))
	}
}

func tail(s string, lines int) string {
	ls := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(ls) > lines {
		ls = ls[len(ls)-lines:]
	}
	return strings.Join(ls, "\n")
}

// syncBuffer is a bytes.Buffer safe for the emulator's two output streams.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.b.Len() > 4<<20 {
		s.b.Reset() // keep memory bounded in long benchmarks; only the tail matters
	}
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func copyFile(t testing.TB, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o755); err != nil {
		t.Fatal(err)
	}
}
