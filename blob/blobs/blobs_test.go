package blobs_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stratus-ml/stratus/blob"
	"github.com/stratus-ml/stratus/blob/blobs"
	"github.com/stratus-ml/stratus/blob/s3blob/miniotest"
)

func keys(src *blobs.Source) string {
	var ks []string
	for _, o := range src.Objects {
		ks = append(ks, o.Key)
	}
	return strings.Join(ks, ",")
}

func write(t *testing.T, root string, files ...string) {
	t.Helper()
	for _, f := range files {
		p := filepath.Join(root, filepath.FromSlash(f))
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestOpen(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	for _, tc := range []struct {
		uri, wantURI string
	}{
		{"file://" + filepath.ToSlash(dir), "file://" + filepath.ToSlash(dir) + "/k"},
		{"file://localhost" + filepath.ToSlash(dir), "file://" + filepath.ToSlash(dir) + "/k"},
		{dir, "file://" + filepath.ToSlash(dir) + "/k"},
		{"rel/blobs", "file://" + filepath.ToSlash(dir) + "/rel/blobs/k"},
		{"s3://bucket", "s3://bucket/k"},
		{"s3://bucket/", "s3://bucket/k"},
		{"s3://bucket/a/b", "s3://bucket/a/b/k"},
		{"s3://bucket/a/b/", "s3://bucket/a/b/k"},
	} {
		st, err := blobs.Open(ctx, tc.uri, blobs.Options{Dir: dir, Region: "us-east-1"})
		if err != nil {
			t.Errorf("Open(%q): %v", tc.uri, err)
			continue
		}
		if got := st.URI("k"); got != tc.wantURI {
			t.Errorf("Open(%q).URI(k) = %q, want %q", tc.uri, got, tc.wantURI)
		}
	}
	for _, bad := range []string{"gs://bucket/x", "s3://", "s3:///key", "file://relative/dir"} {
		if _, err := blobs.Open(ctx, bad, blobs.Options{}); err == nil {
			t.Errorf("Open(%q) succeeded", bad)
		} else {
			t.Logf("Open(%q): %v", bad, err)
		}
	}
}

func TestResolveLocal(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	write(t, dir, "data/part-1.txt", "data/part-2.txt", "data/part-10.csv", "data/_SUCCESS",
		"data/.hidden", "data/sub/part-3.txt", "data/sub/_tmp/part-4.txt", "single", "day=1/x", "day=2/x", "day=2/y")
	for _, tc := range []struct {
		source, want string
	}{
		{"single", "single"},
		{"data/part-1.txt", "part-1.txt"},
		{"data/part-*.txt", "part-1.txt,part-2.txt"},
		{"data/part-?.*", "part-1.txt,part-2.txt"},
		{"data/*/part-*", "sub/part-3.txt"},
		{"data/_*", "_SUCCESS"},
		{"data", "part-1.txt,part-10.csv,part-2.txt,sub/part-3.txt"},
		{"data/", "part-1.txt,part-10.csv,part-2.txt,sub/part-3.txt"},
		{"day=*/x", "day=1/x,day=2/x"},
		{"data/sub/_tmp/", "part-4.txt"}, // named explicitly
		{filepath.Join(dir, "data", "sub"), "part-3.txt"},
		{"file://" + filepath.ToSlash(filepath.Join(dir, "single")), "single"},
	} {
		src, err := blobs.Resolve(ctx, tc.source, blobs.Options{Dir: dir})
		if err != nil {
			t.Errorf("Resolve(%q): %v", tc.source, err)
			continue
		}
		if got := keys(src); got != tc.want {
			t.Errorf("Resolve(%q) = %s, want %s", tc.source, got, tc.want)
		}
		for _, o := range src.Objects {
			if o.Size == 0 || o.ETag == "" {
				t.Errorf("Resolve(%q): %+v lacks size or ETag", tc.source, o)
			}
		}
	}
	src, _ := blobs.Resolve(ctx, "data/part-*.txt", blobs.Options{Dir: dir})
	if u := src.URIs()[0]; u != "file://"+filepath.ToSlash(dir)+"/data/part-1.txt" {
		t.Errorf("URIs()[0] = %s", u)
	}
	if src.TotalSize() != int64(len("data/part-1.txt")+len("data/part-2.txt")) {
		t.Errorf("TotalSize = %d", src.TotalSize())
	}

	for _, missing := range []string{"nope", "data/nope-*.txt", "empty/"} {
		os.MkdirAll(filepath.Join(dir, "empty"), 0o755)
		_, err := blobs.Resolve(ctx, missing, blobs.Options{Dir: dir})
		if !errors.Is(err, blob.ErrNotFound) || !strings.Contains(err.Error(), missing) || !strings.Contains(err.Error(), "relative to "+dir) {
			t.Errorf("Resolve(%q) = %v; want ErrNotFound naming the source and the base directory", missing, err)
		}
	}
	if _, err := blobs.Resolve(ctx, "data/[", blobs.Options{Dir: dir}); err == nil || !strings.Contains(err.Error(), "glob") {
		t.Errorf("bad glob: %v", err)
	}
}

func TestResolveS3(t *testing.T) {
	srv := miniotest.Start(t)
	bucket := srv.NewBucket(t)
	ctx := context.Background()
	opts := blobs.Options{Endpoint: srv.Endpoint, Region: srv.Region, AccessKeyID: srv.AccessKey, SecretAccessKey: srv.SecretKey}
	root, err := blobs.Open(ctx, "s3://"+bucket, opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"data/part-1", "data/part-2", "data/_SUCCESS", "data/sub/x", "datum", "top"} {
		if err := root.Put(ctx, k, strings.NewReader(k)); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct{ source, want string }{
		{"s3://" + bucket + "/top", "top"},
		{"s3://" + bucket + "/data", "part-1,part-2,sub/x"},
		{"s3://" + bucket + "/data/", "part-1,part-2,sub/x"},
		{"s3://" + bucket + "/data/part-*", "part-1,part-2"},
		{"s3://" + bucket + "/dat*", "datum"},
		{"s3://" + bucket, "data/part-1,data/part-2,data/sub/x,datum,top"},
	} {
		src, err := blobs.Resolve(ctx, tc.source, opts)
		if err != nil {
			t.Errorf("Resolve(%q): %v", tc.source, err)
			continue
		}
		if got := keys(src); got != tc.want {
			t.Errorf("Resolve(%q) = %s, want %s", tc.source, got, tc.want)
		}
		if u := src.URIs()[0]; !strings.HasPrefix(u, "s3://"+bucket+"/") || !strings.HasSuffix(u, src.Objects[0].Key) {
			t.Errorf("Resolve(%q): URI %s", tc.source, u)
		}
	}
	_, err = blobs.Resolve(ctx, "s3://"+bucket+"/missing", opts)
	if !errors.Is(err, blob.ErrNotFound) || !strings.Contains(err.Error(), "s3://"+bucket+"/missing") {
		t.Errorf("missing: %v", err)
	}
	_, err = blobs.Resolve(ctx, "s3://no-such-bucket-x/data/", opts)
	if !errors.Is(err, blob.ErrNoBucket) {
		t.Errorf("missing bucket: %v", err)
	}
	// The AWS environment variables alone reach the server.
	srv.SetEnv(t)
	src, err := blobs.Resolve(ctx, fmt.Sprintf("s3://%s/top", bucket), blobs.Options{})
	if err != nil || keys(src) != "top" {
		t.Errorf("Resolve via environment: %v", err)
	}
}
