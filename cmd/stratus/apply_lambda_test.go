package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stratus-ml/stratus/blob/s3blob/miniotest"
	lambdabe "github.com/stratus-ml/stratus/executor/lambda"
	"github.com/stratus-ml/stratus/executor/lambda/lambdatest"
)

// TestApplyOnEmulators runs `stratus apply -backend lambda` with
// STRATUS_LAMBDA_ENDPOINTS pointing at emulators serving the test operators, their
// blobs in a MinIO bucket, and checks its outputs against a local apply of the same
// pipeline.
func TestApplyOnEmulators(t *testing.T) {
	if testing.Short() {
		t.Skip("builds binaries")
	}
	bin := buildTestBinary(t)
	s3 := miniotest.Start(t)
	bucket := s3.NewBucket(t)
	creds := []string{"AWS_ACCESS_KEY_ID=" + s3.AccessKey, "AWS_SECRET_ACCESS_KEY=" + s3.SecretKey,
		"AWS_REGION=" + s3.Region, "AWS_ENDPOINT_URL_S3=" + s3.Endpoint}
	ems := lambdatest.Start(t, lambdatest.Build(t, lambdatest.TestBootstrap), 2, lambdatest.Options{Isolated: true, Env: creds})
	src := `
test_map "sq" {
  tasks      = 6
  fail_times = 1
  fail_index = 2
}
test_mapreduce "mr" {
  tasks    = 5
  reducers = 2
}
test_map "after" {
  tasks  = 2
  offset = test_map.sq.sum
}
output "sum"   { value = test_map.sq.sum }
output "mr"    { value = test_mapreduce.mr.partials }
output "after" { value = test_map.after.sum }
`
	backend := fmt.Sprintf("backend \"lambda\" {\n  function = \"stratus\"\n  bucket = \"s3://%s/run\"\n}\n", bucket)
	apply := func(env ...string) (string, []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "main.hcl"), []byte(src+backend), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, append([]string{"apply", "-auto-approve"}, env[1:]...)...)
		cmd.Dir = dir
		cmd.Env = append(append(os.Environ(), "NO_COLOR=1", env[0]), creds...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("apply %v: %v\n%s", env, err, out)
		}
		cmd = exec.Command(bin, "output", "-json")
		cmd.Dir = dir
		outputs, err := cmd.Output()
		if err != nil {
			t.Fatal(err)
		}
		return string(out), outputs
	}
	_, want := apply("STRATUS_X=1", "-backend", "local")
	log, got := apply(lambdabe.EnvEndpoints+"="+strings.Join(lambdatest.URLs(ems), ","), "-backend", "lambda")
	if !bytes.Equal(got, want) {
		t.Errorf("outputs on lambda:\n%s\nwant (local):\n%s", got, want)
	}
	if !strings.Contains(log, "injected failure 1 of 1") || !strings.Contains(log, "Apply complete!") {
		t.Errorf("apply output lacks the retried failure or completion:\n%s", log)
	}
	for _, e := range ems {
		if !strings.Contains(e.Log(), "START RequestId") {
			t.Errorf("emulator %s served no invocation", e.URL)
		}
	}
}
