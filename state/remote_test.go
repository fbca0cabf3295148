package state

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/stratus-ml/stratus/blob/s3blob"
	"github.com/stratus-ml/stratus/blob/s3blob/miniotest"
	"github.com/stratus-ml/stratus/internal/testtools"
)

func remoteOf(t *testing.T, srv *miniotest.Server, bucket, prefix, ws string) *Remote {
	t.Helper()
	r, err := OpenRemote(context.Background(), bucket, prefix, ws, s3blob.Options{
		Endpoint: srv.Endpoint, Region: srv.Region, AccessKeyID: srv.AccessKey, SecretAccessKey: srv.SecretKey,
	})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// TestRemoteLock: the lock object is created only if absent; the loser learns
// the holder; a release removes only its own lock.
func TestRemoteLock(t *testing.T) {
	srv := miniotest.Start(t)
	bucket := srv.NewBucket(t)
	ctx := ctxT(t)
	a, b := remoteOf(t, srv, bucket, "team/p", ""), remoteOf(t, srv, bucket, "team/p", "")
	alice := LockInfo{ID: "alice1", User: "alice", Host: "laptop-a", PID: 101, Command: "stratus apply", Started: time.Now().UTC()}
	bob := LockInfo{ID: "bob1", User: "bob", Host: "laptop-b", PID: 202, Command: "stratus apply", Started: time.Now().UTC()}
	if err := a.Lock(ctx, alice); err != nil {
		t.Fatal(err)
	}
	err := b.Lock(ctx, bob)
	var le *LockedError
	if !errors.As(err, &le) || !errors.Is(err, ErrLocked) {
		t.Fatalf("second lock: %v, want a *LockedError", err)
	}
	if le.Holder.ID != "alice1" || le.Gone {
		t.Fatalf("holder %+v gone=%v, want alice's, live", le.Holder, le.Gone)
	}
	for _, want := range []string{"alice@laptop-a", "pid 101", "stratus apply", "s3://" + bucket + "/team/p/state.lock", "-lock-timeout", "stratus state unlock"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("lock error %q does not say %q", err, want)
		}
	}
	// Bob's release of a lock that is not his leaves it.
	if got, err := b.Unlock(ctx, "bob1"); err != nil || got != nil {
		t.Fatalf("Unlock(bob) = %v, %v", got, err)
	}
	if h, err := b.LockHolder(ctx); err != nil || h == nil || h.ID != "alice1" {
		t.Fatalf("holder after bob's release = %v, %v", h, err)
	}
	// Another workspace has a lock of its own.
	if err := remoteOf(t, srv, bucket, "team/p", "tuning").Lock(ctx, bob); err != nil {
		t.Fatalf("lock of another workspace: %v", err)
	}
	if got, err := a.Unlock(ctx, "alice1"); err != nil || got == nil || got.User != "alice" {
		t.Fatalf("Unlock(alice) = %v, %v", got, err)
	}
	if err := b.Lock(ctx, bob); err != nil {
		t.Fatalf("lock after release: %v", err)
	}
}

// TestRemoteWorkspaces: Create pushes an empty state once, RemoteWorkspaces
// lists the workspaces that have one, Delete removes it.
func TestRemoteWorkspaces(t *testing.T) {
	srv := miniotest.Start(t)
	bucket := srv.NewBucket(t)
	ctx := ctxT(t)
	opts := s3blob.Options{Endpoint: srv.Endpoint, Region: srv.Region, AccessKeyID: srv.AccessKey, SecretAccessKey: srv.SecretKey}
	list := func() []string {
		t.Helper()
		got, err := RemoteWorkspaces(ctx, bucket, "team/p", opts)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	if got := list(); len(got) != 0 {
		t.Fatalf("workspaces of an empty bucket: %v", got)
	}
	for _, ws := range []string{"tuning", "ablation"} {
		if err := remoteOf(t, srv, bucket, "team/p", ws).Create(ctx, "alice@a"); err != nil {
			t.Fatal(err)
		}
	}
	// The default workspace's state and a lock without a state are not workspaces.
	if err := remoteOf(t, srv, bucket, "team/p", "").Create(ctx, "alice@a"); err != nil {
		t.Fatal(err)
	}
	if err := remoteOf(t, srv, bucket, "team/p", "locked").Lock(ctx, LockInfo{ID: "x"}); err != nil {
		t.Fatal(err)
	}
	if got := list(); !reflect.DeepEqual(got, []string{"ablation", "tuning"}) {
		t.Fatalf("workspaces = %v, want [ablation tuning]", got)
	}
	tuning := remoteOf(t, srv, bucket, "team/p", "tuning")
	if err := tuning.Create(ctx, "bob@b"); !errors.Is(err, ErrStateChanged) {
		t.Fatalf("second Create: %v, want ErrStateChanged", err)
	}
	st, err := tuning.Checkout(ctx, CheckoutOptions{})
	if err != nil || st == nil {
		t.Fatalf("checkout of a created workspace: %v, %v", st, err)
	}
	recs, err := st.Stages()
	st.Close()
	if err != nil || len(recs) != 0 {
		t.Fatalf("stages of a created workspace: %v, %v", recs, err)
	}
	if err := tuning.Delete(ctx); err != nil {
		t.Fatal(err)
	}
	if ok, err := tuning.Exists(ctx); err != nil || ok {
		t.Fatalf("Exists after Delete = %v, %v", ok, err)
	}
	if got := list(); !reflect.DeepEqual(got, []string{"ablation"}) {
		t.Fatalf("workspaces after delete = %v", got)
	}
}

// TestRemoteLockGone: a holder on this host whose process has exited is
// reported as gone (a stale lock).
func TestRemoteLockGone(t *testing.T) {
	srv := miniotest.Start(t)
	r := remoteOf(t, srv, srv.NewBucket(t), "p", "")
	ctx := ctxT(t)
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	dead := NewLockInfo("stratus apply")
	dead.PID = cmd.Process.Pid // exited and reaped
	if err := r.Lock(ctx, dead); err != nil {
		t.Fatal(err)
	}
	var le *LockedError
	if err := r.Lock(ctx, NewLockInfo("stratus apply")); !errors.As(err, &le) || !le.Gone {
		t.Fatalf("lock over a dead holder: %v, want a stale *LockedError", err)
	} else if !strings.Contains(err.Error(), "stale") || !strings.Contains(err.Error(), "stratus state unlock") {
		t.Fatalf("stale lock error %q does not say it is stale and how to break it", err)
	}
	// The same host name on another machine (or boot), or a live pid, is not gone.
	other := dead
	other.Boot = "another-boot"
	if other.Gone() {
		t.Error("a holder of another boot with this host name counted as gone")
	}
	live := NewLockInfo("stratus apply")
	if live.Gone() {
		t.Error("this process counted as gone")
	}
}

// TestRemotePushConditional: the snapshot is created only if absent and
// replaced only if unchanged since it was read.
func TestRemotePushConditional(t *testing.T) {
	srv := miniotest.Start(t)
	r := remoteOf(t, srv, srv.NewBucket(t), "p", "")
	ctx := ctxT(t)
	if b, etag, err := r.Pull(ctx); b != nil || etag != "" || err != nil {
		t.Fatalf("Pull of a new state = %q, %q, %v", b, etag, err)
	}
	e1, err := r.Push(ctx, []byte("one"), "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Push(ctx, []byte("two"), ""); !errors.Is(err, ErrStateChanged) {
		t.Fatalf("create over an existing state: %v, want ErrStateChanged", err)
	}
	e2, err := r.Push(ctx, []byte("two"), e1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Push(ctx, []byte("stale"), e1); !errors.Is(err, ErrStateChanged) {
		t.Fatalf("push with an old ETag: %v, want ErrStateChanged", err)
	}
	b, e3, err := r.Pull(ctx)
	if err != nil || string(b) != "two" || e3 != e2 {
		t.Fatalf("Pull = %q, %q, %v; want two, %q", b, e3, err, e2)
	}
}

// TestCheckoutPushesEachStage: a writer's working copy pushes after every
// recorded stage; a reader sees it; a writer that lost the race fails,
// overwrites nothing and saves its state in the errored file.
func TestCheckoutPushesEachStage(t *testing.T) {
	srv := miniotest.Start(t)
	bucket := srv.NewBucket(t)
	r := remoteOf(t, srv, bucket, "p", "")
	ctx := ctxT(t)
	errored := filepath.Join(t.TempDir(), ErroredFile)
	w, err := r.Checkout(ctx, CheckoutOptions{Dir: filepath.Join(t.TempDir(), "work"), Writable: true, By: "alice@a", Errored: errored})
	if err != nil {
		t.Fatal(err)
	}
	// A second writer pulls the same (empty) state: it will lose.
	late, err := r.Checkout(ctx, CheckoutOptions{Writable: true, By: "bob@b", Errored: errored})
	if err != nil {
		t.Fatal(err)
	}
	defer late.Close()
	if err := w.PutStage(record("train.a", "k1")); err != nil {
		t.Fatal(err)
	}
	rd, err := r.Checkout(ctx, CheckoutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rec, err := rd.Stage("train.a"); err != nil || rec == nil || rec.Key != "k1" {
		t.Fatalf("reader sees %v, %v after the writer recorded train.a", rec, err)
	}
	rdDir := rd.dir
	rd.Close()
	if _, err := os.Stat(rdDir); !os.IsNotExist(err) {
		t.Errorf("reader's working copy %s left behind: %v", rdDir, err)
	}
	err = late.PutStage(record("train.b", "k2"))
	if !errors.Is(err, ErrStateChanged) || !strings.Contains(err.Error(), "state push "+errored) {
		t.Fatalf("late writer's push: %v, want ErrStateChanged and how to push the errored file", err)
	}
	snap, _, err := r.PullSnapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := snapStages(t, snap); !reflect.DeepEqual(got, []string{"train.a"}) {
		t.Fatalf("remote state holds %v after the late push, want only train.a", got)
	}
	f, err := os.Open(errored)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	saved, err := ParseSnapshot(f, errored)
	if err != nil {
		t.Fatal(err)
	}
	if got := snapStages(t, saved); !reflect.DeepEqual(got, []string{"train.b"}) {
		t.Fatalf("errored file holds %v, want train.b", got)
	}
	if err := w.Push(ctx); err != nil {
		t.Fatalf("the lock holder's final push: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

func snapStages(t *testing.T, snap *Snapshot) []string {
	t.Helper()
	var out []string
	for _, e := range snap.Entries {
		if strings.HasPrefix(e.Key, pStage) {
			out = append(out, strings.TrimPrefix(e.Key, pStage))
		}
	}
	return out
}

// TestRemoteBadState: an object that is not a Stratus state is refused with
// its address, and left as it was.
func TestRemoteBadState(t *testing.T) {
	srv := miniotest.Start(t)
	bucket := srv.NewBucket(t)
	r := remoteOf(t, srv, bucket, "p", "")
	ctx := ctxT(t)
	for _, body := range []string{`terraform state, not ours`, `{"version": 4, "lineage": "x", "resources": []}`} {
		if _, err := srv.Client().PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String("p/state.json"), Body: strings.NewReader(body)}); err != nil {
			t.Fatal(err)
		}
		_, err := r.Checkout(ctx, CheckoutOptions{Writable: true})
		if !errors.Is(err, ErrNotState) || !strings.Contains(err.Error(), "s3://"+bucket+"/p/state.json") {
			t.Fatalf("checkout of %q: %v, want ErrNotState naming the object", body, err)
		}
		b, _, err := r.Pull(ctx)
		if err != nil || string(b) != body {
			t.Fatalf("object changed to %q (%v)", b, err)
		}
	}
}

// TestRemoteAccessErrors: wrong credentials, a missing bucket and an endpoint
// that does not answer each name the address and what to do.
func TestRemoteAccessErrors(t *testing.T) {
	srv := miniotest.Start(t)
	bucket := srv.NewBucket(t)
	ctx := ctxT(t)
	opts := s3blob.Options{Endpoint: srv.Endpoint, Region: srv.Region, AccessKeyID: srv.AccessKey, SecretAccessKey: "wrong-secret"}
	bad, err := OpenRemote(ctx, bucket, "p", "", opts)
	if err != nil {
		t.Fatal(err)
	}
	err = bad.Lock(ctx, NewLockInfo("stratus apply"))
	if !errors.Is(err, ErrRemoteAccess) || !strings.Contains(err.Error(), "s3://"+bucket+"/p/state.lock") || !strings.Contains(err.Error(), "AWS_SECRET_ACCESS_KEY") {
		t.Fatalf("lock with a wrong secret: %v", err)
	}
	if _, err := bad.Checkout(ctx, CheckoutOptions{}); !errors.Is(err, ErrRemoteAccess) {
		t.Fatalf("checkout with a wrong secret: %v", err)
	}
	missing := remoteOf(t, srv, "no-such-bucket", "p", "")
	if err := missing.Lock(ctx, NewLockInfo("stratus apply")); !errors.Is(err, ErrRemoteAccess) || !strings.Contains(err.Error(), `bucket "no-such-bucket" does not exist`) {
		t.Fatalf("lock in a missing bucket: %v", err)
	}
	addr := testtools.FreeAddr(t) // nothing listens there
	opts = s3blob.Options{Endpoint: "http://" + addr, Region: srv.Region, AccessKeyID: srv.AccessKey, SecretAccessKey: srv.SecretKey}
	gone, err := OpenRemote(ctx, bucket, "p", "", opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := gone.Checkout(ctx, CheckoutOptions{}); !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), "s3://"+bucket+"/p/state.json") || !strings.Contains(err.Error(), addr) {
		t.Fatalf("checkout from an unreachable endpoint: %v", err)
	}
}

// TestSnapshotRoundTrip: every record (binary keys and values included) but
// the digest cache survives Snapshot, Encode, ParseSnapshot and Restore.
func TestSnapshotRoundTrip(t *testing.T) {
	a, _ := openTemp(t)
	if err := a.PutStage(record("train.a", "k1")); err != nil {
		t.Fatal(err)
	}
	id, err := a.PipelineID()
	if err != nil {
		t.Fatal(err)
	}
	if err := a.AppendSeries("train.a", json.RawMessage(`{"loss":0.5}`)); err != nil {
		t.Fatal(err)
	}
	if err := a.PutRun(&RunRecord{ID: "r1", Started: time.Now(), Status: "succeeded"}); err != nil {
		t.Fatal(err)
	}
	if err := a.PutTask("k2", TaskRecord{Wave: "map", Index: 3, Final: true, Result: json.RawMessage(`{"n":1}`)}); err != nil {
		t.Fatal(err)
	}
	if err := a.PutDigest("/data/x", FileDigest{Size: 1, SHA256: "ab"}); err != nil {
		t.Fatal(err)
	}
	snap, err := a.Snapshot("alice@a")
	if err != nil {
		t.Fatal(err)
	}
	if snap.Lineage != id || snap.Serial != serial(t, a) || !reflect.DeepEqual(snap.Runs, []string{"r1"}) {
		t.Fatalf("snapshot header: lineage %q serial %d runs %v", snap.Lineage, snap.Serial, snap.Runs)
	}
	var buf bytes.Buffer
	if err := snap.Encode(&buf); err != nil {
		t.Fatal(err)
	}
	got, err := ParseSnapshot(&buf, "file")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := openTemp(t)
	if err := b.PutStage(record("train.old", "k0")); err != nil { // replaced
		t.Fatal(err)
	}
	if err := b.Restore(got); err != nil {
		t.Fatal(err)
	}
	if r, _ := b.Stage("train.old"); r != nil {
		t.Error("Restore kept a record the snapshot does not hold")
	}
	if r, err := b.Stage("train.a"); err != nil || r == nil || !reflect.DeepEqual(r, record("train.a", "k1")) {
		t.Errorf("restored train.a = %+v, %v", r, err)
	}
	if got, _ := b.PipelineID(); got != id {
		t.Errorf("restored pipeline ID %q, want %q", got, id)
	}
	if serial(t, b) != serial(t, a) {
		t.Errorf("restored serial %d, want %d", serial(t, b), serial(t, a))
	}
	if pts, _ := b.Series("train.a"); len(pts) != 1 || string(pts[0]) != `{"loss":0.5}` {
		t.Errorf("restored series %s", pts)
	}
	if tasks, _ := b.Tasks("k2", "map"); len(tasks) != 1 || !tasks[3].Final {
		t.Errorf("restored tasks %v", tasks)
	}
	if runs, _ := b.Runs(); len(runs) != 1 || runs[0].ID != "r1" {
		t.Errorf("restored runs %v", runs)
	}
	if d, _ := b.Digest("/data/x"); d != nil {
		t.Error("the digest cache, a per-machine cache, travelled in the snapshot")
	}
	// NewerThan: the same state is not newer; one with another stage or run is.
	if why := snap.NewerThan(got); why != "" {
		t.Errorf("a snapshot is newer than itself: %s", why)
	}
	if err := a.PutRun(&RunRecord{ID: "r2", Started: time.Now(), Status: "succeeded"}); err != nil {
		t.Fatal(err)
	}
	later, _ := a.Snapshot("")
	if why := later.NewerThan(got); !strings.Contains(why, "run r2") {
		t.Errorf("NewerThan after a run = %q", why)
	}
	a.PutStage(record("train.c", "k3"))
	later, _ = a.Snapshot("")
	if why := later.NewerThan(got); !strings.Contains(why, "serial") {
		t.Errorf("NewerThan after a stage = %q", why)
	}
	other := *got
	other.Lineage = "0000000000000000"
	if why := later.NewerThan(&other); !strings.Contains(why, "another pipeline") {
		t.Errorf("NewerThan of another lineage = %q", why)
	}
}

// TestParseSnapshotRejects: documents that are not snapshots are refused
// with what they are, never half-read.
func TestParseSnapshotRejects(t *testing.T) {
	for _, tc := range []struct{ doc, want string }{
		{``, "not a Stratus state"},
		{`PK\x03\x04`, "not a Stratus state"},
		{`{"version":4,"terraform_version":"1.9.0"}`, `"format" is ""`},
		{`{"format":"stratus-state","version":99,"entries":[]}`, "newer Stratus"},
		{`{"format":"stratus-state","version":1,"entries":[{"json":1}]}`, "entry 0"},
		{`{"format":"stratus-state","version":1,"entries":[{"key":"a","b64":"!!"}]}`, "entry 0"},
		{`{"format":"stratus-state","version":1,"entries":[{"key":"a"}]}`, "needs one of json and b64"},
	} {
		_, err := ParseSnapshot(strings.NewReader(tc.doc), "f.json")
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "f.json") {
			t.Errorf("ParseSnapshot(%q) = %v, want an error naming f.json saying %q", tc.doc, err, tc.want)
		}
	}
}

// FuzzParseSnapshot: any input is a snapshot or an error, never a panic.
func FuzzParseSnapshot(f *testing.F) {
	f.Add([]byte(`{"format":"stratus-state","version":1,"entries":[{"key":"a","json":{}},{"key_b64":"AA==","b64":"AA=="}]}`))
	f.Add([]byte(`{"format":"stratus-state","version":1,"entries":[{"key":"","b64":null}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		snap, err := ParseSnapshot(bytes.NewReader(b), "fuzz")
		if err == nil {
			for _, e := range snap.Entries {
				if _, _, err := e.decode(); err != nil {
					t.Fatalf("accepted an entry that does not decode: %v", err)
				}
			}
		}
	})
}

// BenchmarkStageRecorded is what recording a stage costs a lock holder with a
// remote state (the stage record, a snapshot of a state of 100 stages and a
// conditional PUT to MinIO) beside the same on a local state, measured in the
// same run: b.ReportMetric gives both and their ratio.
func BenchmarkStageRecorded(b *testing.B) {
	srv := miniotest.Start(b)
	r, err := OpenRemote(context.Background(), srv.NewBucket(b), "p", "", s3blob.Options{
		Endpoint: srv.Endpoint, Region: srv.Region, AccessKeyID: srv.AccessKey, SecretAccessKey: srv.SecretKey,
	})
	if err != nil {
		b.Fatal(err)
	}
	remote, err := r.Checkout(context.Background(), CheckoutOptions{Dir: filepath.Join(b.TempDir(), "w"), Writable: true})
	if err != nil {
		b.Fatal(err)
	}
	defer remote.Close()
	local, err := Open(filepath.Join(b.TempDir(), "local"))
	if err != nil {
		b.Fatal(err)
	}
	defer local.Close()
	for _, st := range []*Store{local, remote} {
		for i := 0; i < 100; i++ {
			if err := st.PutStage(record(fmt.Sprintf("train.s%03d", i), fmt.Sprintf("k%03d", i))); err != nil {
				b.Fatal(err)
			}
		}
	}
	var localNs, remoteNs time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		if err := local.PutStage(record("train.s050", fmt.Sprintf("n%d", i))); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if err := remote.PutStage(record("train.s050", fmt.Sprintf("n%d", i))); err != nil {
			b.Fatal(err)
		}
		localNs += t1.Sub(t0)
		remoteNs += time.Since(t1)
	}
	b.ReportMetric(float64(localNs.Microseconds())/float64(b.N), "local-µs/stage")
	b.ReportMetric(float64(remoteNs.Microseconds())/float64(b.N), "remote-µs/stage")
	b.ReportMetric(float64(remoteNs)/float64(localNs), "remote/local")
}
