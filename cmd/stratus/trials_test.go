package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/cookiejar"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer that a subprocess writes while the test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestTrialsCommands runs `stratus apply -ui` on a search of test trials and drives
// it from other processes: trials list, kill, kill of an unknown trial, ui (which
// points at the running apply), kill-all; then checks that control.json is gone and
// that trials list falls back to the state.
func TestTrialsCommands(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a binary")
	}
	bin := buildTestBinary(t)
	dir := t.TempDir()
	src := `
test_trials "search" {
  trials   = 4
  parallel = 3
  points   = 1200
  interval = "50ms"
}
`
	if err := os.WriteFile(filepath.Join(dir, "main.hcl"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	stratus := func(args ...string) (string, string, error) {
		cmd := exec.Command(bin, args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "NO_COLOR=1")
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		return out.String(), errb.String(), err
	}

	if _, stderr, err := stratus("trials", "kill", "t-x"); err == nil || !strings.Contains(stderr, "no apply is running") {
		t.Errorf("kill before any apply: %v %q", err, stderr)
	}

	apply := exec.Command(bin, "apply", "-auto-approve", "-ui", "127.0.0.1:0")
	apply.Dir = dir
	apply.Env = append(os.Environ(), "NO_COLOR=1")
	var applyOut syncBuffer
	apply.Stdout, apply.Stderr = &applyOut, &applyOut
	if err := apply.Start(); err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() { waited <- apply.Wait() }()
	t.Cleanup(func() {
		_ = apply.Process.Kill()
		<-waited
	})

	control := filepath.Join(dir, ".stratus", "control.json")
	deadline := time.Now().Add(30 * time.Second)
	var listOut string
	for {
		if time.Now().After(deadline) {
			t.Fatalf("no three running trials in 30s; apply output:\n%s\nlast list:\n%s", applyOut.String(), listOut)
		}
		if _, err := os.Stat(control); err == nil {
			listOut, _, _ = stratus("trials", "list")
			if strings.Count(listOut, "RUNNING") == 3 {
				break
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	fi, err := os.Stat(control)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("control.json: %v mode %v", err, fi.Mode().Perm())
	}

	// The dashboard URL was printed, with the token, and it serves the page.
	url := regexp.MustCompile(`Dashboard: (http://127\.0\.0\.1:\d+/\?token=[0-9a-f]{64})`).FindStringSubmatch(applyOut.String())
	if url == nil {
		t.Fatalf("apply -ui printed no dashboard URL:\n%s", applyOut.String())
	}
	jar, _ := cookiejar.New(nil)
	resp, err := (&http.Client{Jar: jar}).Get(url[1])
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("dashboard page: %d", resp.StatusCode)
	}
	if out, _, err := stratus("ui"); err != nil || !strings.Contains(out, url[1]) {
		t.Errorf("ui during the apply should print its dashboard URL %s: %v\n%s", url[1], err, out)
	}

	// The list is a table with parameters; pick a running trial and kill it.
	header := strings.Fields(strings.SplitN(listOut, "\n", 2)[0])
	if strings.Join(header[:3], " ") != "STAGE TRIAL STATUS" {
		t.Errorf("list header %q", header)
	}
	victim := regexp.MustCompile(`(?m)^test_trials\.search\s+(t-[0-9a-f]{8})\s+RUNNING\s.*learning_rate=`).FindStringSubmatch(listOut)
	if victim == nil {
		t.Fatalf("no running trial with parameters in:\n%s", listOut)
	}
	out, stderr, err := stratus("trials", "kill", victim[1])
	if err != nil || out != "Killed trial "+victim[1]+" of test_trials.search.\n" {
		t.Errorf("kill: %v %q %q", err, out, stderr)
	}
	if _, stderr, err := stratus("trials", "kill", victim[1]); err == nil || !strings.Contains(stderr, "already KILLED") {
		t.Errorf("second kill: %v %q", err, stderr)
	}
	if _, stderr, err := stratus("trials", "kill", "t-00000000"); err == nil || !strings.Contains(stderr, `no trial "t-00000000"`) {
		t.Errorf("kill of an unknown trial: %v %q", err, stderr)
	}
	var trials []struct {
		Trial, Status, Reason string
	}
	jsonOut, _, err := stratus("trials", "list", "-json", "-stage", "test_trials.search")
	if err != nil || json.Unmarshal([]byte(jsonOut), &trials) != nil || len(trials) != 4 {
		t.Fatalf("list -json: %v\n%s", err, jsonOut)
	}
	for _, tr := range trials {
		if tr.Trial == victim[1] && (tr.Status != "KILLED" || tr.Reason != "killed by user") {
			t.Errorf("killed trial listed %+v", tr)
		}
	}

	out, stderr, err = stratus("trials", "kill-all")
	if err != nil || !strings.Contains(out, "Killed every queued and running trial of test_trials.search.") {
		t.Errorf("kill-all: %v %q %q", err, out, stderr)
	}
	select {
	case err := <-waited:
		waited <- err
		if err != nil {
			t.Fatalf("apply: %v\n%s", err, applyOut.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("apply did not finish after kill-all:\n%s", applyOut.String())
	}
	if _, err := os.Stat(control); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("control.json left behind: %v", err)
	}

	// Finished: list reads the state; kill says nothing runs.
	out, stderr, err = stratus("trials", "list")
	if err != nil || !strings.Contains(stderr, "No apply is running") || strings.Count(out, "KILLED") != 4 {
		t.Errorf("list after the apply: %v\n%s%s", err, stderr, out)
	}
	if _, stderr, err := stratus("trials", "kill-all"); err == nil || !strings.Contains(stderr, "no apply is running") {
		t.Errorf("kill-all after the apply: %v %q", err, stderr)
	}

	// ui serves the finished apply from the state until interrupted.
	ui := exec.Command(bin, "ui", "-addr", "127.0.0.1:0")
	ui.Dir = dir
	var uiOut syncBuffer
	ui.Stdout, ui.Stderr = &uiOut, &uiOut
	if err := ui.Start(); err != nil {
		t.Fatal(err)
	}
	uiDone := make(chan error, 1)
	go func() { uiDone <- ui.Wait() }()
	defer func() {
		_ = ui.Process.Kill()
		<-uiDone
	}()
	var uiURL []string
	for deadline := time.Now().Add(10 * time.Second); uiURL == nil; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("ui printed no URL:\n%s", uiOut.String())
		}
		uiURL = regexp.MustCompile(`(http://127\.0\.0\.1:\d+)/\?token=([0-9a-f]{64})`).FindStringSubmatch(uiOut.String())
	}
	req, _ := http.NewRequest("GET", uiURL[1]+"/api/status", nil)
	req.Header.Set("Authorization", "Bearer "+uiURL[2])
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var status struct {
		Run    struct{ Mode string }
		Trials []struct{ Status string }
	}
	err = json.NewDecoder(resp.Body).Decode(&status)
	resp.Body.Close()
	if err != nil || status.Run.Mode != "finished" || len(status.Trials) != 4 {
		t.Errorf("ui status: %v %+v", err, status)
	}
	if err := ui.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-uiDone:
		uiDone <- err
		if err != nil {
			t.Errorf("ui after Ctrl-C: %v\n%s", err, uiOut.String())
		}
	case <-time.After(10 * time.Second):
		t.Errorf("ui did not stop on Ctrl-C")
	}
}
