package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// testSharedCacheOnLambda is TestServerless's shared cache case: two teammates
// on the lambda backend, each with a blob store of their own in the bucket, share
// a stage cache. Bob adopts Alice's three stages by reference (his store gets
// their small objects and references, none of the partitions), then trains with
// another learning rate: his worker functions read normalize's partitions from
// the shared cache through the references, and load's, which nothing reads, stay
// there.
func testSharedCacheOnLambda(t *testing.T, s *serverless) {
	cache := fmt.Sprintf("stratus {\n  cache = \"s3://%s/team-cache\"\n}\n", s.bucket)
	dirs := map[string]string{}
	for _, who := range []string{"alice", "bob"} {
		dir := filepath.Join(s.root, "pipelines", "shared-"+who)
		copyDir(t, filepath.Join(s.root, "pipelines", "a9a"), dir)
		s.writeBackend(dir, "shared-"+who, "  timeout  = \"20s\"\n")
		if err := os.WriteFile(filepath.Join(dir, "cache.hcl"), []byte(cache), 0o644); err != nil {
			t.Fatal(err)
		}
		dirs[who] = dir
	}
	if log := s.run(dirs["alice"], "apply", "-auto-approve"); !strings.Contains(log, "train.lr: published: ") {
		t.Fatalf("alice's apply did not publish train.lr:\n%s", log)
	}
	want := s.outputs(dirs["alice"])

	log := s.run(dirs["bob"], "apply", "-auto-approve")
	if !strings.Contains(log, "Apply complete! 0 ran, 3 cached (3 from the shared cache)") {
		t.Fatalf("bob's apply did not adopt every stage:\n%s", log)
	}
	if got := s.outputs(dirs["bob"]); got["test_logloss"] != want["test_logloss"] {
		t.Errorf("bob's adopted test_logloss %v, alice's %v", got["test_logloss"], want["test_logloss"])
	}
	parts := func() (refs int, parse, scale int) {
		t.Helper()
		p := s3.NewListObjectsV2Paginator(s.s3.Client(), &s3.ListObjectsV2Input{Bucket: aws.String(s.bucket), Prefix: aws.String("shared-bob/tasks/")})
		for p.HasMorePages() {
			page, err := p.NextPage(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			for _, o := range page.Contents {
				k := *o.Key
				switch {
				case strings.HasSuffix(k, "/stratus-shared-ref.json"):
					refs++
				case strings.Contains(k, "/parse/") && strings.Contains(k, "/part-"):
					parse++
				case strings.Contains(k, "/scale/") && strings.Contains(k, "/part-"):
					scale++
				}
			}
		}
		return
	}
	if refs, parse, scale := parts(); refs < 2 || parse+scale != 0 {
		t.Fatalf("after adopting, bob's store holds %d references and %d+%d partitions; want references and no partition", refs, parse, scale)
	}

	log = s.run(dirs["bob"], "apply", "-auto-approve", "-var", "learning_rate=0.2")
	if !strings.Contains(log, "train.lr: started") || !strings.Contains(log, "Apply complete! 1 ran, 2 cached") {
		t.Fatalf("bob's train on lambda after adopting:\n%s", log)
	}
	if l, _ := s.outputs(dirs["bob"])["test_logloss"].(float64); l <= 0 || l > 0.4 {
		t.Errorf("bob's test_logloss %v, after training on adopted partitions", l)
	}
	if _, parse, scale := parts(); parse != 0 || scale == 0 {
		t.Errorf("after bob's train, his store holds %d of load's and %d of normalize's partitions; want none and some", parse, scale)
	}
}
