package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stratus-ml/stratus/blob"
	"github.com/stratus-ml/stratus/blob/blobs"
	"github.com/stratus-ml/stratus/blob/s3blob/miniotest"
	"github.com/stratus-ml/stratus/dsl"
	"github.com/stratus-ml/stratus/executor/local"
	"github.com/stratus-ml/stratus/executor/runtime"
	"github.com/stratus-ml/stratus/operators/train"
	"github.com/stratus-ml/stratus/planner"
	"github.com/stratus-ml/stratus/psstore"
	"github.com/stratus-ml/stratus/state"
)

// stratusIn runs the CLI in-process and returns its exit status, stdout and stderr.
func stratusIn(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(args, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

func mustStratus(t *testing.T, args ...string) string {
	t.Helper()
	code, out, errs := stratusIn(t, args...)
	if code != 0 {
		t.Fatalf("stratus %s: exit %d\n%s\n%s", strings.Join(args, " "), code, out, errs)
	}
	return out
}

func writePipeline(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func listKeys(t *testing.T, s blob.Store, prefix string) []string {
	t.Helper()
	infos, err := s.List(context.Background(), prefix)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, in := range infos {
		keys = append(keys, in.Key)
	}
	sort.Strings(keys)
	return keys
}

func stageKeyOf(t *testing.T, dir, addr string) string {
	t.Helper()
	st, err := state.OpenExisting(stateDBDir(dir))
	if err != nil || st == nil {
		t.Fatalf("open state of %s: %v", dir, err)
	}
	defer st.Close()
	r, err := st.Stage(addr)
	if err != nil || r == nil {
		t.Fatalf("stage %s in %s: %v", addr, dir, err)
	}
	return r.Key
}

const svmData = "1 1:0.5 3:1\n-1 2:1\n1 1:2 2:3\n-1 1:1 3:2\n"

// TestDestroyS3SharedBucket applies two pipelines that share a MinIO bucket and
// one identically configured stage, and destroys them in turn: destroy deletes
// only under its own stage prefixes, keeps the shared stage's objects while the
// other pipeline records them, and never touches other objects in the bucket.
func TestDestroyS3SharedBucket(t *testing.T) {
	srv := miniotest.Start(t)
	srv.SetEnv(t)
	bucket := srv.NewBucket(t)
	backend := `backend "local" {
  blob = "s3://` + bucket + `/team"
}
`
	a, b := t.TempDir(), t.TempDir()
	writePipeline(t, a, map[string]string{"data.svm": svmData, "main.hcl": backend + `
load "adult" {
  source = "data.svm"
}
normalize "adult" {
  input  = load.adult
  method = "min_max"
}
`})
	writePipeline(t, b, map[string]string{"data.svm": svmData, "main.hcl": backend + `
load "adult" {
  source = "data.svm"
}
`})
	mustStratus(t, "apply", "-auto-approve", a)
	mustStratus(t, "apply", "-auto-approve", b)
	loadKey, normKey := stageKeyOf(t, a, "load.adult"), stageKeyOf(t, a, "normalize.adult")
	if k := stageKeyOf(t, b, "load.adult"); k != loadKey {
		t.Fatalf("the shared stage has keys %s and %s; the test needs them equal", loadKey, k)
	}
	ctx := context.Background()
	root, err := blobs.Open(ctx, "s3://"+bucket, blobs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// Objects that are not any pipeline's stage outputs.
	for _, k := range []string{"team/sources/sha256/abc", "team/stagesX/keep", "other/stages/" + loadKey + "/x"} {
		if err := root.Put(ctx, k, strings.NewReader("keep")); err != nil {
			t.Fatal(err)
		}
	}
	if len(listKeys(t, root, "team/stages/"+normKey+"/")) == 0 || len(listKeys(t, root, "team/stages/"+loadKey+"/")) == 0 {
		t.Fatal("apply wrote no stage objects to the bucket")
	}

	out := mustStratus(t, "destroy", "-auto-approve", a)
	if !strings.Contains(out, "load.adult: kept: also recorded by load.adult in "+absDir(b)) {
		t.Errorf("destroy of A did not keep the stage B records:\n%s", out)
	}
	if !regexp.MustCompile(`normalize\.adult: deleted [0-9]+ objects`).MatchString(out) {
		t.Errorf("destroy of A did not delete its own stage:\n%s", out)
	}
	if got := listKeys(t, root, "team/stages/"+normKey+"/"); len(got) != 0 {
		t.Errorf("A's stage objects left: %v", got)
	}
	if got := listKeys(t, root, "team/stages/"+loadKey+"/"); len(got) == 0 {
		t.Error("destroy of A deleted the objects B still records")
	}
	if out := mustStratus(t, "plan", a); !strings.Contains(out, "Plan: 2 to run, 0 to rerun, 0 cached.") {
		t.Errorf("plan after destroy:\n%s", out)
	}
	if out := mustStratus(t, "plan", b); !strings.Contains(out, "Plan: 0 to run, 0 to rerun, 1 cached.") {
		t.Errorf("plan of B after A's destroy:\n%s", out)
	}

	out = mustStratus(t, "destroy", "-auto-approve", b)
	if !strings.Contains(out, "load.adult: deleted ") {
		t.Errorf("destroy of B, the last owner, did not delete the shared stage:\n%s", out)
	}
	// Left: the planted objects and the uploaded sources (shared by design);
	// nothing under the pipelines' stage, task or owner prefixes.
	planted := map[string]bool{"other/stages/" + loadKey + "/x": true, "team/sources/sha256/abc": true, "team/stagesX/keep": true}
	for _, k := range listKeys(t, root, "") {
		switch {
		case planted[k]:
			delete(planted, k)
		case strings.HasPrefix(k, "team/sources/sha256/"):
		default:
			t.Errorf("left after both destroys: %s", k)
		}
	}
	for k := range planted {
		t.Errorf("destroy deleted %s, which no pipeline's stage wrote", k)
	}
	// A workspace writes under its own prefix, and destroys only there.
	mustStratus(t, "workspace", "new", "-dir", a, "dev")
	mustStratus(t, "apply", "-auto-approve", a)
	if got := listKeys(t, root, "team/workspaces/dev/stages/"+normKey+"/"); len(got) == 0 {
		t.Error("apply in workspace dev wrote nothing under team/workspaces/dev/")
	}
	if got := listKeys(t, root, "team/stages/"); len(got) != 0 {
		t.Errorf("apply in workspace dev wrote outside its prefix: %v", got)
	}
	mustStratus(t, "destroy", "-auto-approve", a)
	for _, k := range listKeys(t, root, "team/workspaces/dev/") {
		if !strings.HasPrefix(k, "team/workspaces/dev/sources/") {
			t.Errorf("left in workspace dev after destroy: %s", k)
		}
	}
}

// TestDestroyDeletesModel applies a training pipeline that keeps its model in
// psstore (keep_model) on the local backend and checks that destroy deletes the
// model from the shards' data.
func TestDestroyDeletesModel(t *testing.T) {
	dir := t.TempDir()
	writePipeline(t, dir, map[string]string{"data.svm": svmData, "main.hcl": `
load "adult" {
  source = "data.svm"
}
train "lr" {
  input      = load.adult
  keep_model = true
  solver     = "sgd" # trains on psstore (L-BFGS keeps its weights in the functions)
}
backend "local" {
  psstore_shards = 2 # not "auto": the test opens the same shards
}
`})
	mustStratus(t, "apply", "-auto-approve", dir)
	st, err := state.Open(filepath.Join(dir, ".stratus", "state"))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := st.PipelineID()
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	model := train.ModelName(pid, "train.lr", stageKeyOf(t, dir, "train.lr"), "")
	exists := func() bool {
		t.Helper()
		ctx := context.Background()
		lc, err := runtime.StartLocalShards(ctx, filepath.Join(dir, ".stratus"), local.DefaultShards)
		if err != nil {
			t.Fatal(err)
		}
		defer lc.Close()
		cl, err := psstore.Dial(ctx, lc.Addrs(), psstore.WithToken(lc.Token()), psstore.WithReplicas(1))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		_, err = cl.ModelStats(ctx, model)
		return err == nil
	}
	if !exists() {
		t.Fatalf("model %s not in psstore after apply", model)
	}
	out := mustStratus(t, "destroy", "-auto-approve", dir)
	if !strings.Contains(out, "model "+model+" deleted") {
		t.Errorf("destroy did not report the model:\n%s", out)
	}
	if exists() {
		t.Errorf("model %s still in psstore after destroy", model)
	}
}

// TestDestroyShardsDown destroys a Lambda pipeline whose psstore shards are not
// running: it says so, leaves the models, and still deletes the stage's objects
// in the bucket and its record.
func TestDestroyShardsDown(t *testing.T) {
	srv := miniotest.Start(t)
	srv.SetEnv(t)
	t.Setenv("STRATUS_PSSTORE_TOKEN", "secret")
	bucket := srv.NewBucket(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := l.Addr().String()
	l.Close() // nothing listens there now
	dir := t.TempDir()
	writePipeline(t, dir, map[string]string{"data.svm": svmData, "main.hcl": `
backend "lambda" {
  region      = "us-east-1"
  function    = "stratus"
  bucket      = "s3://` + bucket + `/run"
  s3_endpoint = "` + srv.Endpoint + `"
  psstore     = ["` + down + `"]
}
load "adult" {
  source = "data.svm"
}
train "lr" {
  input = load.adult
}
`})
	// Record the stages as a Lambda apply would have, with an object each.
	cfg, diags := dsl.Load(dir, dsl.LoadOptions{Registry: registry})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	st, err := state.Open(stateDBDir(dir))
	if err != nil {
		t.Fatal(err)
	}
	p, diags := planner.Build(context.Background(), cfg, planner.Options{State: st})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	ctx := context.Background()
	store, err := pipelineBlob(ctx, cfg, dir)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for _, s := range p.Stages {
		if err := st.PutStage(&state.StageRecord{Address: s.Address, Operator: s.Operator, Version: s.Version, Key: s.Key, Started: now, Finished: now}); err != nil {
			t.Fatal(err)
		}
		if err := store.Put(ctx, "stages/"+s.Key+"/out", strings.NewReader("data")); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()

	code, out, errs := stratusIn(t, "destroy", "-auto-approve", dir)
	if code != 0 {
		t.Fatalf("destroy: exit %d\n%s\n%s", code, out, errs)
	}
	if !strings.Contains(errs, "Warning: the psstore shards ("+down+") are not running or not reachable") || !strings.Contains(errs, "their models are left in place") {
		t.Errorf("destroy did not say the shards are down:\n%s", errs)
	}
	if !strings.Contains(out, "Destroy complete! 2 stages destroyed.") {
		t.Errorf("destroy output:\n%s", out)
	}
	if got := listKeys(t, store, "stages/"); len(got) != 0 {
		t.Errorf("objects left: %v", got)
	}
}

// BenchmarkDestroyDeletes measures deleting a stage's objects from a real MinIO
// one at a time (the reference) and with destroy's concurrency, in one run:
// make bench-destroy.
func BenchmarkDestroyDeletes(b *testing.B) {
	srv := miniotest.Start(b)
	bucket := srv.NewBucket(b)
	ctx := context.Background()
	s, err := blobs.Open(ctx, "s3://"+bucket, blobs.Options{Region: srv.Region, Endpoint: srv.Endpoint,
		AccessKeyID: srv.AccessKey, SecretAccessKey: srv.SecretKey})
	if err != nil {
		b.Fatal(err)
	}
	const objects = 500
	for _, n := range []int{1, deleteConcurrency} {
		b.Run(fmt.Sprintf("objects=%d/in-flight=%d", objects, n), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				for j := 0; j < objects; j++ {
					if err := s.Put(ctx, fmt.Sprintf("stages/k/part-%05d", j), strings.NewReader("x")); err != nil {
						b.Fatal(err)
					}
				}
				objs, err := s.List(ctx, "stages/k/")
				if err != nil || len(objs) != objects {
					b.Fatalf("listed %d objects: %v", len(objs), err)
				}
				b.StartTimer()
				if err := deleteObjects(ctx, s, objs, n); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(objects*b.N)/b.Elapsed().Seconds(), "objects/s")
			if left, _ := s.List(ctx, "stages/k/"); len(left) != 0 {
				b.Fatalf("%d objects left", len(left))
			}
		})
	}
}

// failingStore fails Delete for one key; the rest of blob.Store is unused.
type failingStore struct {
	blob.Store
	bad     string
	deleted chan string
}

func (s *failingStore) Delete(_ context.Context, key string) error {
	if key == s.bad {
		return os.ErrPermission
	}
	s.deleted <- key
	return nil
}

// deleteObjects returns the first failure, and waits for the deletes in flight.
func TestDeleteObjectsError(t *testing.T) {
	var objs []blob.Info
	for i := 0; i < 100; i++ {
		objs = append(objs, blob.Info{Key: fmt.Sprintf("k%03d", i)})
	}
	s := &failingStore{bad: "k010", deleted: make(chan string, len(objs))}
	err := deleteObjects(context.Background(), s, objs, 4)
	if err != os.ErrPermission {
		t.Fatalf("err = %v, want the Delete error", err)
	}
	close(s.deleted) // no goroutine may still be deleting
	if n := len(s.deleted); n == 0 || n >= len(objs)-1 {
		t.Errorf("%d deletes went through; want some, and a stop after the failure", n)
	}
	if err := deleteObjects(context.Background(), &failingStore{deleted: make(chan string, len(objs))}, objs, 4); err != nil {
		t.Errorf("no failure: %v", err)
	}
}

// A stage that reruns with a new key gives up its marker on the old key, unless
// a twin of this state still records that key.
func TestOwnerMarkersFollowReruns(t *testing.T) {
	dir := t.TempDir()
	pipeline := func(method string, twin bool) {
		src := `
load "adult" {
  source = "data.svm"
}
normalize "adult" {
  input  = load.adult
  method = "` + method + `"
}
`
		if twin {
			src += `
normalize "twin" {
  input  = load.adult
  method = "min_max"
}
`
		}
		writePipeline(t, dir, map[string]string{"data.svm": svmData, "main.hcl": src})
	}
	marked := func(key string) bool {
		_, err := os.Stat(filepath.Join(dir, ".stratus", "blobs", ownerKey(key, ownerID(dir))))
		return err == nil
	}
	pipeline("min_max", false)
	mustStratus(t, "apply", "-auto-approve", dir)
	k1 := stageKeyOf(t, dir, "normalize.adult")
	if !marked(k1) {
		t.Fatal("apply left no owner marker")
	}
	pipeline("standard", false)
	mustStratus(t, "apply", "-auto-approve", dir)
	k2 := stageKeyOf(t, dir, "normalize.adult")
	if marked(k1) || !marked(k2) {
		t.Errorf("after a rerun: old key marked %v, new key marked %v; want false, true", marked(k1), marked(k2))
	}
	// Back to min_max beside a twin with min_max: the twin keeps k1 marked when
	// normalize.adult moves on again.
	pipeline("min_max", true)
	mustStratus(t, "apply", "-auto-approve", dir)
	pipeline("standard", true)
	mustStratus(t, "apply", "-auto-approve", dir)
	if !marked(k1) {
		t.Error("the twin's key lost its marker when normalize.adult reran")
	}
}
