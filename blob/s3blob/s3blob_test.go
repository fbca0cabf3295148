package s3blob_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/stratus-ml/stratus/blob"
	"github.com/stratus-ml/stratus/blob/blobtest"
	"github.com/stratus-ml/stratus/blob/s3blob"
	"github.com/stratus-ml/stratus/blob/s3blob/miniotest"
)

func newStore(t *testing.T, srv *miniotest.Server, bucket, prefix string, mod func(*s3blob.Options)) *s3blob.Store {
	t.Helper()
	opts := s3blob.Options{
		Bucket:          bucket,
		Prefix:          prefix,
		Region:          srv.Region,
		Endpoint:        srv.Endpoint,
		PathStyle:       true,
		AccessKeyID:     srv.AccessKey,
		SecretAccessKey: srv.SecretKey,
		PartSize:        s3blob.MinPartSize,
		Concurrency:     2,
		MaxAttempts:     2,
	}
	if mod != nil {
		mod(&opts)
	}
	s, err := s3blob.New(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestContract(t *testing.T) {
	srv := miniotest.Start(t)
	blobtest.RunContract(t, func(t *testing.T) blob.Store {
		return newStore(t, srv, srv.NewBucket(t), "", nil)
	})
}

func TestContractWithPrefix(t *testing.T) {
	srv := miniotest.Start(t)
	bucket := srv.NewBucket(t)
	blobtest.RunContract(t, func(t *testing.T) blob.Store {
		// Stores under different prefixes of one bucket must not see each other.
		return newStore(t, srv, bucket, "runs/"+strings.ReplaceAll(t.Name(), "/", "_"), nil)
	})
}

func TestErrorsSayWhatIsWrong(t *testing.T) {
	srv := miniotest.Start(t)
	bucket := srv.NewBucket(t)
	ctx := context.Background()

	t.Run("missing bucket", func(t *testing.T) {
		s := newStore(t, srv, "no-such-bucket", "p", nil)
		for op, err := range map[string]error{
			"Get":  func() error { _, err := s.Get(ctx, "k"); return err }(),
			"Stat": func() error { _, err := s.Stat(ctx, "k"); return err }(),
			"List": func() error { _, err := s.List(ctx, ""); return err }(),
			"Put":  s.Put(ctx, "k", strings.NewReader("x")),
		} {
			if !errors.Is(err, blob.ErrNoBucket) || errors.Is(err, blob.ErrNotFound) {
				t.Errorf("%s: %v; want ErrNoBucket (and not ErrNotFound)", op, err)
				continue
			}
			for _, want := range []string{"s3://no-such-bucket/p/", `bucket "no-such-bucket" not found`, "create it"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("%s error %q lacks %q", op, err, want)
				}
			}
		}
	})

	t.Run("missing object", func(t *testing.T) {
		s := newStore(t, srv, bucket, "", nil)
		_, err := s.Get(ctx, "dir/missing")
		if !errors.Is(err, blob.ErrNotFound) || !strings.Contains(err.Error(), "s3://"+bucket+"/dir/missing") {
			t.Errorf("Get: %v", err)
		}
		_, err = s.Stat(ctx, "dir/missing")
		if !errors.Is(err, blob.ErrNotFound) {
			t.Errorf("Stat: %v", err)
		}
	})

	t.Run("wrong secret", func(t *testing.T) {
		s := newStore(t, srv, bucket, "", func(o *s3blob.Options) { o.SecretAccessKey = "wrong-secret-key" })
		_, err := s.Get(ctx, "k")
		if !errors.Is(err, blob.ErrAccessDenied) || !strings.Contains(err.Error(), "AWS_SECRET_ACCESS_KEY") {
			t.Errorf("Get: %v; want ErrAccessDenied naming AWS_SECRET_ACCESS_KEY", err)
		}
		_, err = s.Stat(ctx, "k")
		if !errors.Is(err, blob.ErrAccessDenied) || !strings.Contains(err.Error(), "credentials") {
			t.Errorf("Stat: %v; want ErrAccessDenied mentioning credentials", err)
		}
	})

	t.Run("unknown access key", func(t *testing.T) {
		s := newStore(t, srv, bucket, "", func(o *s3blob.Options) { o.AccessKeyID = "nobody" })
		err := s.Put(ctx, "k", strings.NewReader("x"))
		if !errors.Is(err, blob.ErrAccessDenied) || !strings.Contains(err.Error(), "AWS_ACCESS_KEY_ID") {
			t.Errorf("Put: %v; want ErrAccessDenied naming AWS_ACCESS_KEY_ID", err)
		}
		_, err = s.List(ctx, "")
		if !errors.Is(err, blob.ErrAccessDenied) {
			t.Errorf("List: %v; want ErrAccessDenied", err)
		}
	})
}

func TestPartSizeBelowMinimum(t *testing.T) {
	_, err := s3blob.New(context.Background(), s3blob.Options{Bucket: "b", PartSize: 1 << 20, Region: "us-east-1"})
	if err == nil || !strings.Contains(err.Error(), "minimum") {
		t.Errorf("New with a 1 MiB part size = %v, want an error naming the minimum", err)
	}
}

// failAfter yields n bytes of 'x' and then fails.
type failAfter struct{ n int }

func (f *failAfter) Read(p []byte) (int, error) {
	if f.n == 0 {
		return 0, errors.New("source broke")
	}
	m := min(len(p), f.n)
	for i := range p[:m] {
		p[i] = 'x'
	}
	f.n -= m
	return m, nil
}

func TestFailedMultipartIsAborted(t *testing.T) {
	srv := miniotest.Start(t)
	bucket := srv.NewBucket(t)
	s := newStore(t, srv, bucket, "", nil)
	ctx := context.Background()
	if err := s.Put(ctx, "big", &failAfter{n: 3 * s3blob.MinPartSize}); err == nil {
		t.Fatal("Put from a failing reader succeeded")
	}
	out, err := srv.Client().ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: &bucket})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Uploads) != 0 {
		t.Errorf("%d multipart uploads left open after a failed Put", len(out.Uploads))
	}
}

// TestMessages pins what each error a user meets must say, against a real
// MinIO: the operation and s3:// URI (bucket and key), the server's address
// where the store reports it, the kind of failure, and what to do about it.
func TestMessages(t *testing.T) {
	srv := miniotest.Start(t)
	bucket := srv.NewBucket(t)
	ctx := context.Background()
	badSecret := func(o *s3blob.Options) { o.SecretAccessKey = "bad-secret" }
	badKey := func(o *s3blob.Options) { o.AccessKeyID = "nobody" }
	for _, tc := range []struct {
		name string
		call func() error
		want []string
	}{{
		name: "missing bucket",
		call: func() error { _, err := newStore(t, srv, "no-such-bucket", "", nil).Get(ctx, "k"); return err },
		want: []string{"get s3://no-such-bucket/k:", `bucket "no-such-bucket" not found`, "at " + srv.Endpoint,
			"create it (e.g. `aws s3 mb s3://no-such-bucket`) or fix the bucket name"},
	}, {
		name: "missing object",
		call: func() error { _, err := newStore(t, srv, bucket, "", nil).Get(ctx, "dir/k"); return err },
		want: []string{"s3://" + bucket + "/dir/k:", "object not found", "check the path, or run the stage that produces it"},
	}, {
		name: "wrong secret on get",
		call: func() error { _, err := newStore(t, srv, bucket, "", badSecret).Get(ctx, "k"); return err },
		want: []string{"get s3://" + bucket + "/k:", "access denied", "signature does not match (wrong secret key?)",
			"check AWS_SECRET_ACCESS_KEY / AWS_PROFILE"},
	}, {
		// HEAD has no body, so the server cannot say why: the message lists
		// every cause and names the permission the operation needs.
		name: "wrong secret on stat",
		call: func() error { _, err := newStore(t, srv, bucket, "", badSecret).Stat(ctx, "k"); return err },
		want: []string{"stat s3://" + bucket + "/k:", "access denied (HTTP 403)",
			"check that the credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE) are valid",
			"allows s3:GetObject"},
	}, {
		name: "unknown access key",
		call: func() error { return newStore(t, srv, bucket, "p", badKey).Put(ctx, "k", strings.NewReader("x")) },
		want: []string{"put s3://" + bucket + "/p/k:", "access denied", "access key id is not known to the server",
			"at " + srv.Endpoint, "check AWS_ACCESS_KEY_ID / AWS_PROFILE"},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if err == nil {
				t.Fatal("no error")
			}
			t.Log(err)
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\nlacks %q", err, w)
				}
			}
		})
	}
}

// PutIfAbsent writes a key once: a second write, and every loser of a race of
// writers, writes nothing and is told so, and the first write's bytes stay.
func TestPutIfAbsent(t *testing.T) {
	srv := miniotest.Start(t)
	bucket := srv.NewBucket(t)
	ctx := context.Background()
	s := newStore(t, srv, bucket, "team", nil)
	for i, want := range []bool{true, false} {
		created, err := s.PutIfAbsent(ctx, "entries/x.json", []byte(fmt.Sprint("write ", i)))
		if err != nil || created != want {
			t.Fatalf("write %d: created %v, %v; want %v", i, created, err, want)
		}
	}
	out, err := srv.Client().GetObject(ctx, &s3.GetObjectInput{Bucket: &bucket, Key: aws.String("team/entries/x.json")})
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := io.ReadAll(out.Body); string(b) != "write 0" {
		t.Fatalf("the object holds %q after two writes, want the first", b)
	}

	const writers = 8
	var wg sync.WaitGroup
	won := make([]bool, writers)
	errs := make([]error, writers)
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			won[i], errs[i] = s.PutIfAbsent(ctx, "race", []byte(fmt.Sprint(i)))
		}()
	}
	wg.Wait()
	winner := -1
	for i := range writers {
		if errs[i] != nil {
			t.Errorf("writer %d: %v", i, errs[i])
		}
		if won[i] {
			if winner >= 0 {
				t.Errorf("writers %d and %d both created the key", winner, i)
			}
			winner = i
		}
	}
	if winner < 0 {
		t.Fatal("no writer created the key")
	}
	b, err := readAll(ctx, s, "race")
	if err != nil || string(b) != fmt.Sprint(winner) {
		t.Errorf("the key holds %q, %v; want the winner's %d", b, err, winner)
	}

	if _, err := s.PutIfAbsent(ctx, "../x", nil); err == nil {
		t.Error("PutIfAbsent of an invalid key succeeded")
	}
	_, err = newStore(t, srv, "no-such-bucket", "", nil).PutIfAbsent(ctx, "k", []byte("x"))
	if !errors.Is(err, blob.ErrNoBucket) || !strings.Contains(err.Error(), "put s3://no-such-bucket/k") {
		t.Errorf("PutIfAbsent into a missing bucket: %v; want ErrNoBucket naming the URI", err)
	}
	_, err = newStore(t, srv, bucket, "", func(o *s3blob.Options) { o.AccessKeyID = "nobody" }).PutIfAbsent(ctx, "k", []byte("x"))
	if !errors.Is(err, blob.ErrAccessDenied) || !strings.Contains(err.Error(), "AWS_ACCESS_KEY_ID") {
		t.Errorf("PutIfAbsent with an unknown access key: %v; want ErrAccessDenied naming AWS_ACCESS_KEY_ID", err)
	}
}

func readAll(ctx context.Context, s *s3blob.Store, key string) ([]byte, error) {
	r, err := s.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}
