package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/stratus-ml/stratus/blob/s3blob/miniotest"
	"github.com/stratus-ml/stratus/dsl"
	"github.com/stratus-ml/stratus/executor/runtime"
	"github.com/stratus-ml/stratus/internal/pricing"
)

// TestPlanPricing: the plan prices its estimates as the run would — a lambda
// backend at its region's and architecture's prices and its memory, the local
// backend (or -backend local) at pricing.Default().
func TestPlanPricing(t *testing.T) {
	dir := t.TempDir()
	hcl := `
backend "lambda" {
  region       = "eu-west-1"
  function     = "stratus"
  bucket       = "s3://b/p"
  memory_mb    = 3008
  architecture = "x86_64"
}
load "d" {
  source = "d.svm"
}
`
	for name, content := range map[string]string{"main.hcl": hcl, "d.svm": "1 1:1\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfg, diags := dsl.Load(dir, dsl.LoadOptions{Registry: registry, Backends: runtime.Decoder{}})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	want, err := pricing.For("eu-west-1", pricing.X8664)
	if err != nil {
		t.Fatal(err)
	}
	backend, _ := runtime.Location(cfg, "", dir)
	pr, mem := planPricing(cfg, backend)
	if backend != "lambda" || pr != want || mem != 3008 {
		t.Errorf("lambda backend: %q, %+v at %d MB; want lambda, %+v at 3008 MB", backend, pr, mem, want)
	}
	backend, _ = runtime.Location(cfg, "local", dir)
	if pr, _ := planPricing(cfg, backend); backend != "local" || pr != pricing.Default() {
		t.Errorf("-backend local: %q, %+v; want local at %+v", backend, pr, pricing.Default())
	}
}

// TestPlanSizesS3Sources: an s3:// source is sized at plan time from the same
// listing that digests it (MinIO here), so its stage is estimated and sized on
// the bytes it holds, not as empty.
func TestPlanSizesS3Sources(t *testing.T) {
	s3 := miniotest.Start(t)
	bucket := s3.NewBucket(t)
	s3.SetEnv(t)
	sizes := map[string]int{"data/a.svm": 1500, "data/b.svm": 2500, "other/c.svm": 999}
	for key, n := range sizes {
		line := "1 1:1\n"
		body := strings.Repeat(line, n/len(line)) + strings.Repeat("\n", n%len(line))
		if _, err := s3.Client().PutObject(context.Background(), &awss3.PutObjectInput{
			Bucket: aws.String(bucket), Key: aws.String(key), Body: strings.NewReader(body),
		}); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	writePipeline(t, dir, map[string]string{"main.hcl": fmt.Sprintf(`
load "d" {
  source = "s3://%s/data/"
}
`, bucket)})
	out := mustStratus(t, "plan", "-json", dir)
	var plan struct {
		Stages []struct {
			Address  string `json:"address"`
			Estimate struct {
				InputBytes int64 `json:"input_bytes"`
			} `json:"estimate"`
		} `json:"stages"`
	}
	if err := json.Unmarshal([]byte(out), &plan); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if len(plan.Stages) != 1 || plan.Stages[0].Estimate.InputBytes != 4000 {
		t.Fatalf("load.d input_bytes: want 4000 (a.svm + b.svm), got plan\n%s", out)
	}
}
