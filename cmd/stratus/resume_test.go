package main

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// buildTestBinary builds stratus with the test operators into dir.
func buildTestBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "stratus")
	cmd := exec.Command("go", "build", "-tags", "stratus_testops", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

func markerLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return strings.Fields(string(b))
}

// TestResumeAfterKill kills an apply with SIGKILL in the middle of a stage's wave,
// applies again, and checks that the tasks completed before the kill did not run
// again, that the interrupted stage finished, and that the outputs equal an
// uninterrupted run's.
func TestResumeAfterKill(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a binary")
	}
	bin := buildTestBinary(t)
	pipeline := func(dir, marker string) {
		src := `
test_map "first" {
  tasks = 3
}

test_map "slow" {
  tasks  = 40
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
	}
	stratus := func(dir string, args ...string) *exec.Cmd {
		cmd := exec.Command(bin, args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "NO_COLOR=1")
		return cmd
	}

	// The reference: one uninterrupted run.
	ref := t.TempDir()
	pipeline(ref, filepath.Join(ref, "marker"))
	if out, err := stratus(ref, "apply", "-auto-approve", "-parallelism", "1").CombinedOutput(); err != nil {
		t.Fatalf("reference apply: %v\n%s", err, out)
	}
	refOut, err := stratus(ref, "output", "-json").Output()
	if err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	marker := filepath.Join(dir, "marker")
	pipeline(dir, marker)
	cmd := stratus(dir, "apply", "-auto-approve")
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Kill it once 12 of the slow stage's 40 tasks are done.
	deadline := time.Now().Add(30 * time.Second)
	for len(markerLines(t, marker)) < 12 {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("apply made no progress:\n%s", log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	before := markerLines(t, marker)
	if len(before) >= 40 {
		t.Fatalf("the stage finished before the kill; nothing to resume")
	}

	out, err := stratus(dir, "apply", "-auto-approve").CombinedOutput()
	if err != nil {
		t.Fatalf("resumed apply: %v\n%s", err, out)
	}
	// The first stage completed before the kill: the plan reuses it.
	if !bytes.Contains(out, []byte("= test_map.first")) {
		t.Errorf("resumed plan does not reuse test_map.first:\n%s", out)
	}
	if !bytes.Contains(out, []byte("already done by an earlier run")) {
		t.Errorf("resumed apply does not report resumed tasks:\n%s", out)
	}
	after := markerLines(t, marker)
	counts := map[string]int{}
	for _, m := range after {
		counts[m]++
	}
	if len(counts) != 40 {
		t.Errorf("%d distinct tasks ran, want 40", len(counts))
	}
	// A task that finished but had not been recorded when the process died may run
	// again; at most the tasks in flight at the kill can. Everything recorded before
	// the kill must not.
	redone := len(after) - 40
	if redone > len(before)/2 {
		t.Errorf("%d of %d tasks completed before the kill ran again:\n%s", redone, len(before), strings.Join(after, " "))
	}
	got, err := stratus(dir, "output", "-json").Output()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, refOut) {
		t.Errorf("outputs after resume:\n%s\nwant (uninterrupted run):\n%s", got, refOut)
	}
	// The lock of the killed apply was taken over without help.
	sc := bufio.NewScanner(bytes.NewReader(out))
	found := false
	for sc.Scan() {
		if strings.Contains(sc.Text(), "did not finish") {
			found = true
		}
	}
	if !found {
		t.Errorf("resumed apply did not mention the killed apply:\n%s", out)
	}
}

// TestInterruptLeavesStateConsistent sends SIGINT (Ctrl-C) to an apply in the middle
// of a wave: it stops its in-flight tasks, waits for them, releases its lock and
// exits with an error saying the next apply resumes; the next apply does.
func TestInterruptLeavesStateConsistent(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a binary")
	}
	bin := buildTestBinary(t)
	dir := t.TempDir()
	marker := filepath.Join(dir, "marker")
	src := `
test_map "slow" {
  tasks  = 16
  sleep  = "200ms"
  marker = "` + marker + `"
}
`
	if err := os.WriteFile(filepath.Join(dir, "main.hcl"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "apply", "-auto-approve", "-no-color", dir)
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for len(markerLines(t, marker)) < 4 {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("no progress:\n%s", log.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	if err == nil {
		t.Fatalf("interrupted apply exited 0:\n%s", log.String())
	}
	out := log.String()
	if !strings.Contains(out, "Interrupt received") || !strings.Contains(out, "next apply resumes") {
		t.Errorf("interrupted apply's output:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(dir, ".stratus", "apply.lock")); !os.IsNotExist(err) {
		t.Errorf("the lock file is still there after a clean interrupt (%v)", err)
	}
	done := len(markerLines(t, marker))
	res, err := exec.Command(bin, "apply", "-auto-approve", "-no-color", dir).CombinedOutput()
	if err != nil {
		t.Fatalf("apply after interrupt: %v\n%s", err, res)
	}
	if strings.Contains(string(res), "did not finish") {
		t.Errorf("a cleanly interrupted apply was reported as killed:\n%s", res)
	}
	counts := map[string]int{}
	for _, m := range markerLines(t, marker) {
		counts[m]++
	}
	if len(counts) != 16 {
		t.Errorf("%d distinct tasks ran, want 16", len(counts))
	}
	if total := len(markerLines(t, marker)); total != 16 {
		t.Errorf("%d task runs for 16 tasks (%d before the interrupt): completed tasks ran again", total, done)
	}
}
