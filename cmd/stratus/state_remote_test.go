package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/stratus-ml/stratus/blob/s3blob/miniotest"
	"github.com/stratus-ml/stratus/state"
)

// syncBuf is a buffer a child process writes while the test reads it.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuf) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuf) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// waitUntil polls cond until it holds; the minute is a failsafe, not a margin.
func waitUntil(t *testing.T, what string, cond func() bool, log func() string) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s\n%s", what, log())
		}
	}
}

// TestRemoteStateCLI runs the built binary against a real MinIO with two
// pipeline directories ("teammates") sharing one remote state: a second apply
// fails naming the holder, or waits for it with -lock-timeout and reuses the
// stage the first one pushed; readers work while the lock is held; a holder
// killed with kill -9 leaves a stale lock that is reported and broken with
// `state unlock`; `state pull` and `state push` round-trip the state and push
// refuses to go over a newer one unless -force.
func TestRemoteStateCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a binary and starts MinIO")
	}
	srv := miniotest.Start(t)
	bucket := srv.NewBucket(t)
	srv.SetEnv(t)
	bin := buildTestBinary(t)
	shared := t.TempDir() // the team's blob store, so a stage one pushed is readable by the other
	src := `
variable "sleep" {
  type    = string
  default = "1ms"
}

stratus {
  state = "s3://` + bucket + `/team/p"
}

backend "local" {
  blob = "` + shared + `"
}

test_map "first" {
  tasks = 2
}

test_map "slow" {
  tasks  = 1
  offset = test_map.first.count
  sleep  = var.sleep
}

output "sum" {
  value = test_map.slow.sum
}
`
	alice, bob := t.TempDir(), t.TempDir()
	for _, d := range []string{alice, bob} {
		if err := os.WriteFile(filepath.Join(d, "main.hcl"), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cli := func(dir string, args ...string) *exec.Cmd {
		cmd := exec.Command(bin, args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "NO_COLOR=1")
		return cmd
	}
	run := func(dir string, args ...string) (string, error) {
		out, err := cli(dir, args...).CombinedOutput()
		return string(out), err
	}
	start := func(dir string, args ...string) (*exec.Cmd, *syncBuf) {
		cmd := cli(dir, args...)
		var log syncBuf
		cmd.Stdout, cmd.Stderr = &log, &log
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		return cmd, &log
	}
	ctx := context.Background()
	s3c := srv.Client()
	exists := func(key string) bool {
		_, err := s3c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
		return err == nil
	}
	remoteStages := func() []string {
		out, err := s3c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String("team/p/state.json")})
		if err != nil {
			return nil
		}
		defer out.Body.Close()
		snap, err := state.ParseSnapshot(out.Body, "state.json")
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, e := range snap.Entries {
			if a, ok := strings.CutPrefix(e.Key, "stage/"); ok {
				got = append(got, a)
			}
		}
		return got
	}

	// Alice's apply blocks in test_map.slow, holding the lock, once it has
	// pushed test_map.first.
	a, alog := start(alice, "apply", "-auto-approve", "-var", "sleep=1h")
	waitUntil(t, "alice's apply to push test_map.first", func() bool {
		return exists("team/p/state.lock") && reflect.DeepEqual(remoteStages(), []string{"test_map.first"})
	}, alog.String)

	// Bob's apply fails at once, naming Alice's.
	out, err := run(bob, "apply", "-auto-approve")
	if err == nil {
		t.Fatalf("a second apply ran while the first held the lock:\n%s", out)
	}
	for _, want := range []string{"the state is locked by stratus apply", "pid " + strconv.Itoa(a.Process.Pid), "s3://" + bucket + "/team/p/state.lock", "-lock-timeout"} {
		if !strings.Contains(out, want) {
			t.Errorf("second apply's error does not say %q:\n%s", want, out)
		}
	}
	// Readers take no lock.
	if out, err := run(bob, "state", "list"); err != nil || !strings.Contains(out, "test_map.first") {
		t.Fatalf("state list while the lock is held: %v\n%s", err, out)
	}
	if out, err := run(bob, "plan"); err != nil || !strings.Contains(out, "= test_map.first") {
		t.Fatalf("plan while the lock is held: %v\n%s", err, out)
	}

	// With -lock-timeout Bob waits; once Alice stops, he gets the lock and
	// reuses the stage she pushed.
	b, blog := start(bob, "apply", "-auto-approve", "-lock-timeout", "10m")
	waitUntil(t, "bob's apply to wait for the lock", func() bool {
		return strings.Contains(blog.String(), "Waiting up to 10m0s for the state lock, held by stratus apply")
	}, blog.String)
	if err := a.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if err := a.Wait(); err == nil {
		t.Fatalf("interrupted apply exited 0:\n%s", alog.String())
	}
	if err := b.Wait(); err != nil {
		t.Fatalf("waiting apply: %v\n%s", err, blog.String())
	}
	if !strings.Contains(blog.String(), "1 ran, 1 cached") {
		t.Errorf("bob's apply did not reuse test_map.first from the shared state:\n%s", blog.String())
	}
	if exists("team/p/state.lock") {
		t.Fatal("the lock object is left after both applies finished")
	}
	if out, err := run(alice, "output", "-raw", "sum"); err != nil || strings.TrimSpace(out) != "4" {
		t.Fatalf("alice reads bob's output: %v %q", err, out)
	}

	// kill -9 a holder: its lock is reported as stale and broken with unlock.
	k, klog := start(alice, "apply", "-auto-approve", "-var", "sleep=2h")
	waitUntil(t, "the apply to take the lock", func() bool { return exists("team/p/state.lock") }, klog.String)
	if err := k.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = k.Wait()
	out, err = run(bob, "apply", "-auto-approve", "-lock-timeout", "10m")
	if err == nil {
		t.Fatalf("apply ran over a stale lock:\n%s", out)
	}
	for _, want := range []string{fmt.Sprintf("pid %d", k.Process.Pid), "no longer running: the lock is stale", "`stratus state unlock`"} {
		if !strings.Contains(out, want) {
			t.Errorf("stale lock error does not say %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "Waiting") {
		t.Errorf("apply waited for a holder known to be gone:\n%s", out)
	}
	if out, err := run(bob, "state", "unlock"); err != nil || !strings.Contains(out, "Removed the lock held by stratus apply") {
		t.Fatalf("state unlock of a stale lock: %v\n%s", err, out)
	}
	if out, err := run(bob, "apply", "-auto-approve"); err != nil || !strings.Contains(out, "0 ran, 2 cached") {
		t.Fatalf("apply after unlock: %v\n%s", err, out)
	}

	// A live holder's lock is not broken without -force.
	hold, hlog := start(alice, "apply", "-auto-approve", "-var", "sleep=3h")
	waitUntil(t, "the apply to take the lock", func() bool { return exists("team/p/state.lock") }, hlog.String)
	if out, err := run(bob, "state", "unlock"); err == nil || !strings.Contains(out, "-force") {
		t.Fatalf("state unlock of a live holder's lock: %v\n%s", err, out)
	}
	hold.Process.Signal(os.Interrupt)
	_ = hold.Wait()

	// pull and push round-trip the state.
	s1 := filepath.Join(bob, "s1.json")
	if out, err := run(bob, "state", "pull", "-o", s1); err != nil {
		t.Fatalf("state pull: %v\n%s", err, out)
	}
	if out, err := run(bob, "state", "push", s1); err != nil || !strings.Contains(out, "Pushed "+s1+" to s3://"+bucket+"/team/p/state.json") {
		t.Fatalf("state push of what was pulled: %v\n%s", err, out)
	}
	s2 := filepath.Join(bob, "s2.json")
	if out, err := run(bob, "state", "pull", "-o", s2); err != nil {
		t.Fatalf("state pull: %v\n%s", err, out)
	}
	e1, e2 := snapEntries(t, s1), snapEntries(t, s2)
	if !reflect.DeepEqual(e1, e2) {
		t.Fatalf("pull, push, pull changed the state:\n%v\n%v", e1, e2)
	}
	// After a stage is removed, the pulled file is older: refused, then forced.
	if out, err := run(bob, "state", "rm", "test_map.slow"); err != nil {
		t.Fatalf("state rm: %v\n%s", err, out)
	}
	out, err = run(bob, "state", "push", s1)
	if err == nil || !strings.Contains(out, "refusing to push") || !strings.Contains(out, "-force") {
		t.Fatalf("push over a newer state: %v\n%s", err, out)
	}
	if got := remoteStages(); !reflect.DeepEqual(got, []string{"test_map.first"}) {
		t.Fatalf("a refused push changed the state: %v", got)
	}
	if out, err := run(bob, "state", "push", "-force", s1); err != nil {
		t.Fatalf("state push -force: %v\n%s", err, out)
	}
	if got := remoteStages(); !reflect.DeepEqual(got, []string{"test_map.first", "test_map.slow"}) {
		t.Fatalf("after push -force the state holds %v", got)
	}
	if !exists("team/p/state.backup.json") {
		t.Error("push -force kept no backup of the state it replaced")
	}

	// An object that is not a Stratus state is refused by name, left alone.
	if _, err := s3c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String("team/p/state.json"), Body: strings.NewReader(`{"version":4,"terraform_version":"1.9.0"}`)}); err != nil {
		t.Fatal(err)
	}
	out, err = run(bob, "apply", "-auto-approve")
	if err == nil || !strings.Contains(out, "s3://"+bucket+"/team/p/state.json: not a Stratus state") {
		t.Fatalf("apply over a foreign state object: %v\n%s", err, out)
	}
	if exists("team/p/state.lock") {
		t.Error("a failed apply left its lock")
	}
}

func snapEntries(t *testing.T, path string) []state.SnapshotEntry {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var snap state.Snapshot
	if err := json.Unmarshal(b, &snap); err != nil {
		t.Fatal(err)
	}
	return snap.Entries
}

// TestRemoteWorkspacesCLI: with a remote state, a workspace one teammate creates
// is in the bucket, so the other lists it, selects it and applies in it; deleting
// it refuses while it records stages, as a local one does.
func TestRemoteWorkspacesCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a binary and starts MinIO")
	}
	srv := miniotest.Start(t)
	bucket := srv.NewBucket(t)
	srv.SetEnv(t)
	bin := buildTestBinary(t)
	shared := t.TempDir()
	src := `
stratus {
  state = "s3://` + bucket + `/team/p"
}

backend "local" {
  blob = "` + shared + `"
}

test_map "first" {
  tasks = 2
}
`
	alice, bob := t.TempDir(), t.TempDir()
	for _, d := range []string{alice, bob} {
		if err := os.WriteFile(filepath.Join(d, "main.hcl"), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	run := func(dir string, args ...string) (string, error) {
		cmd := exec.Command(bin, args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "NO_COLOR=1")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	must := func(dir string, args ...string) string {
		t.Helper()
		out, err := run(dir, args...)
		if err != nil {
			t.Fatalf("stratus %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	must(alice, "workspace", "new", "tuning")
	if out := must(bob, "workspace", "list"); out != "* default\n  tuning\n" {
		t.Fatalf("bob's workspace list:\n%s", out)
	}
	if out, err := run(bob, "workspace", "new", "tuning"); err == nil || !strings.Contains(out, `workspace "tuning" already exists`) {
		t.Fatalf("bob's workspace new tuning: %v\n%s", err, out)
	}
	must(bob, "workspace", "select", "tuning")
	if out := must(bob, "apply", "-auto-approve"); !strings.Contains(out, "Apply complete!") {
		t.Fatalf("bob's apply in tuning:\n%s", out)
	}
	// Alice sees bob's stages in the workspace, none in default.
	must(alice, "workspace", "select", "tuning")
	if out := must(alice, "state", "list"); !strings.Contains(out, "test_map.first") {
		t.Fatalf("alice's state list in tuning:\n%s", out)
	}
	must(alice, "workspace", "select", "default")
	if out, _ := run(alice, "state", "list"); strings.Contains(out, "test_map.first") {
		t.Fatalf("alice's default workspace has tuning's stages:\n%s", out)
	}
	if out, err := run(alice, "workspace", "delete", "tuning"); err == nil || !strings.Contains(out, `workspace "tuning" records 1 stage(s)`) {
		t.Fatalf("delete of a workspace with stages: %v\n%s", err, out)
	}
	must(alice, "workspace", "delete", "-force", "tuning")
	_, err := srv.Client().HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String("team/p/workspaces/tuning/state.json")})
	if err == nil {
		t.Error("workspace delete left its remote state")
	}
	if out := must(alice, "workspace", "list"); out != "* default\n" {
		t.Fatalf("alice's workspace list after the delete:\n%s", out)
	}
}

// TestRemoteResumeAfterKill: an apply on a remote state pushes its finished tasks
// while a stage runs (state.TaskPushInterval), so after it is killed with SIGKILL
// and its stale lock is broken, the next apply — which has only the bucket to go
// by — resumes the stage instead of running its finished tasks again.
func TestRemoteResumeAfterKill(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a binary and starts MinIO")
	}
	srv := miniotest.Start(t)
	bucket := srv.NewBucket(t)
	srv.SetEnv(t)
	bin := buildTestBinary(t)
	dir := t.TempDir()
	marker := filepath.Join(dir, "marker")
	// Two at a time, 250ms each: the stage lasts 10s, longer than the push
	// interval, whatever the machine.
	const tasks = 80
	src := `
stratus {
  state = "s3://` + bucket + `/team/p"
}

backend "local" {
  max_concurrency = 2
}

test_map "first" {
  tasks = 3
}

test_map "slow" {
  tasks  = ` + fmt.Sprint(tasks) + `
  offset = test_map.first.count
  sleep  = "250ms"
  marker = "` + marker + `"
}

output "sum" {
  value = test_map.slow.sum
}
`
	if err := os.WriteFile(filepath.Join(dir, "main.hcl"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	stratus := func(args ...string) *exec.Cmd {
		cmd := exec.Command(bin, args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "NO_COLOR=1")
		return cmd
	}
	s3c := srv.Client()
	pushedTasks := func() int {
		out, err := s3c.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String("team/p/state.json")})
		if err != nil {
			return 0
		}
		defer out.Body.Close()
		snap, err := state.ParseSnapshot(out.Body, "state.json")
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, e := range snap.Entries {
			if strings.HasPrefix(e.Key, "task/") {
				n++
			}
		}
		return n
	}
	cmd := stratus("apply", "-auto-approve")
	var log syncBuf
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	waitUntil(t, "the apply to push finished tasks of test_map.slow", func() bool { return pushedTasks() > 0 }, log.String)
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	pushed, before := pushedTasks(), len(markerLines(t, marker))
	if before >= tasks {
		t.Fatalf("the stage finished before the kill; nothing to resume")
	}
	if out, err := stratus("state", "unlock").CombinedOutput(); err != nil {
		t.Fatalf("state unlock of the killed apply's lock: %v\n%s", err, out)
	}
	out, err := stratus("apply", "-auto-approve").CombinedOutput()
	if err != nil {
		t.Fatalf("resumed apply: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "already done by an earlier run") {
		t.Errorf("resumed apply does not report resumed tasks:\n%s", out)
	}
	// The tasks in the pushed state did not run again; the rest ran once more at most.
	after := markerLines(t, marker)
	counts := map[string]int{}
	for _, m := range after {
		counts[m]++
	}
	if len(counts) != tasks {
		t.Errorf("%d distinct tasks ran, want %d", len(counts), tasks)
	}
	if redone := len(after) - tasks; redone > before-pushed {
		t.Errorf("%d tasks ran twice; only the %d finished but not pushed before the kill may", redone, before-pushed)
	}
	want := 0
	for i := 3; i < 3+tasks; i++ {
		want += i * i
	}
	got, err := stratus("output", "-raw", "sum").Output()
	if err != nil || strings.TrimSpace(string(got)) != fmt.Sprint(want) {
		t.Errorf("sum after resume = %q (%v), want %d", got, err, want)
	}
}
