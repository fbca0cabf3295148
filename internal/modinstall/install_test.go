package modinstall_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/hashicorp/hcl/v2"

	"github.com/stratus-ml/stratus/blob/s3blob/miniotest"
	"github.com/stratus-ml/stratus/dsl"
	"github.com/stratus-ml/stratus/internal/modinstall"
	"github.com/stratus-ml/stratus/operators/builtin"
)

const prepModule = `variable "path" {
  type = string
}
load "data" {
  source = var.path
}
output "data" {
  value = load.data
}
`

func put(t *testing.T, srv *miniotest.Server, bucket, key, body string) {
	t.Helper()
	_, err := srv.Client().PutObject(context.Background(), &s3.PutObjectInput{
		Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader([]byte(body)),
	})
	if err != nil {
		t.Fatal(err)
	}
}

func pipeline(t *testing.T, source string) string {
	t.Helper()
	dir := t.TempDir()
	main := `module "prep" {
  source = "` + source + `"
  path   = "${path.module}/d.svm"
}
train "t" {
  input = module.prep.data
}
`
	for name, body := range map[string]string{"main.hcl": main, "d.svm": "1 1:1\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func install(t *testing.T, dir string, upgrade bool) ([]modinstall.Installed, hcl.Diagnostics) {
	t.Helper()
	got, _, diags := modinstall.Install(context.Background(), dir, modinstall.Options{Registry: builtin.Registry(), Upgrade: upgrade})
	return got, diags
}

// TestS3Module installs a module from a real MinIO server through s3://, then
// checks the lock against a changed object and a prefix that holds nothing.
func TestS3Module(t *testing.T) {
	srv := miniotest.Start(t)
	srv.SetEnv(t)
	bucket := srv.NewBucket(t)
	put(t, srv, bucket, "mods/prep/main.hcl", prepModule)
	put(t, srv, bucket, "mods/prep/README.md", "the prep module\n")

	src := "s3://" + bucket + "/mods/prep"
	dir := pipeline(t, src)
	got, diags := install(t, dir, false)
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	if len(got) != 1 || got[0].Address != "module.prep" || got[0].Version != "" || !strings.HasPrefix(got[0].Hash, "h1:") {
		t.Fatalf("installed %+v", got)
	}
	cfg, diags := dsl.Load(dir, dsl.LoadOptions{Registry: builtin.Registry()})
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	if _, ok := cfg.Nodes["module.prep.load.data"]; !ok {
		t.Fatalf("module stage not loaded; nodes %v", cfg.Order)
	}
	if h := cfg.Root.Calls["prep"].Child.ContentHash; h != got[0].Hash {
		t.Fatalf("module content hash %q, locked %q", h, got[0].Hash)
	}

	// The object changes in S3; a fresh machine (no download) must not accept it
	// silently.
	put(t, srv, bucket, "mods/prep/README.md", "the prep module, changed\n")
	if err := os.RemoveAll(filepath.Join(dir, dsl.ModulesDir)); err != nil {
		t.Fatal(err)
	}
	_, diags = install(t, dir, false)
	if !diags.HasErrors() || !strings.Contains(diags.Error(), "content changed") || !strings.Contains(diags.Error(), "stratus init -upgrade") {
		t.Fatalf("want a lock mismatch naming -upgrade, got %v", diags)
	}
	if diags[0].Subject == nil || !strings.HasSuffix(diags[0].Subject.Filename, "main.hcl") {
		t.Fatalf("diagnostic without the module call's range: %+v", diags[0])
	}
	got2, diags := install(t, dir, true)
	if diags.HasErrors() || len(got2) != 1 || got2[0].Hash == got[0].Hash {
		t.Fatalf("upgrade: %v %+v", diags, got2)
	}

	// A prefix with nothing under it.
	_, diags = install(t, pipeline(t, "s3://"+bucket+"/mods/none"), false)
	if !diags.HasErrors() || !strings.Contains(diags.Error(), "holds no objects") || !strings.Contains(diags.Error(), "module.prep") {
		t.Fatalf("want an empty-prefix error, got %v", diags)
	}
}

// TestHTTPArchiveModule installs a module from a .tar.gz served over HTTP (the
// getter https:// uses too), with //subdir picking the module inside the archive.
func TestHTTPArchiveModule(t *testing.T) {
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for name, body := range map[string]string{"modules/prep/main.hcl": prepModule, "README.md": "archive\n"} {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/prep-1.0.tar.gz" {
			http.NotFound(w, r)
			return
		}
		w.Write(buf.Bytes())
	}))
	defer srv.Close()

	dir := pipeline(t, srv.URL+"/prep-1.0.tar.gz//modules/prep")
	got, diags := install(t, dir, false)
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	if len(got) != 1 || got[0].Version != "" {
		t.Fatalf("installed %+v", got)
	}
	cfg, diags := dsl.Load(dir, dsl.LoadOptions{Registry: builtin.Registry()})
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	if _, ok := cfg.Nodes["module.prep.load.data"]; !ok {
		t.Fatalf("module stage not loaded; nodes %v", cfg.Order)
	}

	_, diags = install(t, pipeline(t, srv.URL+"/gone.tar.gz"), false)
	if !diags.HasErrors() || !strings.Contains(diags.Error(), "404") {
		t.Fatalf("want a 404 error, got %v", diags)
	}
}
