package load_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/stratus-ml/stratus/blob/blobs"
	"github.com/stratus-ml/stratus/blob/s3blob/miniotest"
	"github.com/stratus-ml/stratus/executor/runtime/runtimetest"
	"github.com/stratus-ml/stratus/operators"
	"github.com/stratus-ml/stratus/operators/load"
)

// TestLoadOnMinIO runs load against a real S3 server: an s3:// source read
// by a local run, and a run whose blob store is S3 loading local files
// (uploaded first, so that tasks read nothing of this machine). Both must
// give the same datasets as a local run.
func TestLoadOnMinIO(t *testing.T) {
	srv := miniotest.Start(t)
	srv.SetEnv(t)
	bucket := srv.NewBucket(t)
	ctx := context.Background()
	data, err := blobs.Open(ctx, "s3://"+bucket+"/data", blobs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"a9a", "a9a.t"} {
		b, err := os.ReadFile(testdata(t, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := data.Put(ctx, name, bytes.NewReader(b)); err != nil {
			t.Fatal(err)
		}
	}
	pipeline := func(train, test string) string {
		return fmt.Sprintf(`
load "adult" {
  source      = %q
  test_source = %q
}
normalize "adult" {
  input  = load.adult
  method = "standard"
}
`, train, test)
	}
	local, localTest := testdata(t, "a9a"), testdata(t, "a9a.t")

	// The reference: local files, local store.
	ref := runtimetest.New(t, pipeline(local, localTest))
	ref.MustApply()
	refTrain := ref.Dataset(ref.Output("load.adult").GetAttr("train"))
	refNorm := ref.Dataset(ref.Output("normalize.adult").GetAttr("train"))

	t.Run("s3 source", func(t *testing.T) {
		h := runtimetest.New(t, pipeline("s3://"+bucket+"/data/a9a", "s3://"+bucket+"/data/a9a.t"))
		h.MustApply()
		tr := h.Dataset(h.Output("load.adult").GetAttr("train"))
		te := h.Dataset(h.Output("load.adult").GetAttr("test"))
		if tr.Rows != 32561 || te.Rows != 16281 || tr.Features != 123 {
			t.Errorf("rows %d/%d, features %d", tr.Rows, te.Rows, tr.Features)
		}
		if tr.Source.Objects[0].URI != "s3://"+bucket+"/data/a9a" || tr.Source.Objects[0].Name != tr.Source.Objects[0].URI {
			t.Errorf("source objects: %+v", tr.Source.Objects)
		}
		if tr.Digest != refTrain.Digest {
			t.Errorf("digest %s, the local run's %s", tr.Digest, refTrain.Digest)
		}
	})

	t.Run("s3 run store with local source", func(t *testing.T) {
		h := runtimetest.New(t, pipeline(local, localTest))
		h.Env = operators.TaskEnv{Blob: "s3://" + bucket + "/run", BlobEndpoint: srv.Endpoint, BlobRegion: srv.Region}
		_, rec := h.MustApply()
		tr := h.Dataset(h.Output("load.adult").GetAttr("train"))
		if tr.Store != "s3://"+bucket+"/run" || !strings.HasPrefix(h.Output("load.adult").GetAttr("train").GetAttr("manifest").AsString(), "s3://"+bucket+"/run/stages/") {
			t.Errorf("manifest store %s", tr.Store)
		}
		obj := tr.Source.Objects[0]
		if !strings.HasPrefix(obj.URI, "s3://"+bucket+"/run/"+load.SourcesPrefix) || obj.Name != local {
			t.Errorf("tasks should read the uploaded copy: %+v", obj)
		}
		if notes := strings.Join(rec.Notes("load.adult"), "\n"); !strings.Contains(notes, "uploaded 2 local file(s)") {
			t.Errorf("notes: %s", notes)
		}
		if tr.Digest != refTrain.Digest {
			t.Errorf("digest %s, the local run's %s", tr.Digest, refTrain.Digest)
		}
		norm := h.Dataset(h.Output("normalize.adult").GetAttr("train"))
		if norm.Digest != refNorm.Digest || norm.Normalization == nil {
			t.Errorf("normalized digest %s, the local run's %s", norm.Digest, refNorm.Digest)
		}
		runtimetest.CompareStats(t, "normalized on s3", h.Stats(norm), h.Rows(norm))

		// Rerunning with another task count finds the files uploaded.
		h.Write("main.hcl", strings.Replace(pipeline(local, localTest), "load \"adult\" {", "load \"adult\" {\n  tasks = 2", 1))
		sum, rec := h.MustApply()
		if got := runtimetest.Actions(sum); got != "load.adult=ran normalize.adult=ran" {
			t.Errorf("second apply: %s", got)
		}
		if notes := strings.Join(rec.Notes("load.adult"), "\n"); strings.Contains(notes, "uploaded") {
			t.Errorf("uploaded again: %s", notes)
		}
		m := h.Dataset(h.Output("load.adult").GetAttr("train"))
		if m.Rows != 32561 || len(m.Partitions) != 2 || m.StatsDigest != refTrain.StatsDigest {
			t.Errorf("2 tasks: %d rows in %d partitions, stats %s (want %s)", m.Rows, len(m.Partitions), m.StatsDigest, refTrain.StatsDigest)
		}
	})
}

// TestLoadCompressedOnMinIO reads gzip and zstd objects (a directory prefix
// of parts) from a real S3 server, and a local gzipped file through a run
// whose store is S3 (uploaded as it is, compressed): both give the rows and
// statistics of the plain local file.
func TestLoadCompressedOnMinIO(t *testing.T) {
	srv := miniotest.Start(t)
	srv.SetEnv(t)
	bucket := srv.NewBucket(t)
	ctx := context.Background()
	data, err := blobs.Open(ctx, "s3://"+bucket+"/data", blobs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	a9a := readFile(t, testdata(t, "a9a"))
	parts := bytes.SplitAfter(a9a, []byte("\n"))
	half := len(parts) / 2
	for name, b := range map[string][]byte{
		"parts/a": gzipBytes(t, bytes.Join(parts[:half], nil)),
		"parts/b": zstdBytes(t, bytes.Join(parts[half:], nil)),
	} {
		if err := data.Put(ctx, name, bytes.NewReader(b)); err != nil {
			t.Fatal(err)
		}
	}
	ref := runtimetest.New(t, fmt.Sprintf("load \"adult\" {\n  source = %q\n}\n", testdata(t, "a9a")))
	ref.MustApply()
	refTrain := ref.Dataset(ref.Output("load.adult").GetAttr("train"))
	refRows := runtimetest.RowDigests(ref.Rows(refTrain))

	h := runtimetest.New(t, fmt.Sprintf("load \"adult\" {\n  source = %q\n}\n", "s3://"+bucket+"/data/parts/"))
	h.MustApply()
	tr := h.Dataset(h.Output("load.adult").GetAttr("train"))
	sameDataset(t, h, "s3 parts", tr, refTrain, refRows)
	if o := tr.Source.Objects; len(o) != 2 || o[0].Compression != "gzip" || o[1].Compression != "zstd" {
		t.Errorf("objects %+v", o)
	}

	h = runtimetest.New(t, "load \"adult\" {\n  source = \"a9a.gz\"\n}\n")
	h.Write("a9a.gz", string(gzipBytes(t, a9a)))
	h.Env = operators.TaskEnv{Blob: "s3://" + bucket + "/run", BlobEndpoint: srv.Endpoint, BlobRegion: srv.Region}
	h.MustApply()
	tr = h.Dataset(h.Output("load.adult").GetAttr("train"))
	sameDataset(t, h, "s3 run store", tr, refTrain, refRows)
	if o := tr.Source.Objects[0]; !strings.HasPrefix(o.URI, "s3://"+bucket+"/run/"+load.SourcesPrefix) || o.Compression != "gzip" || o.Size >= int64(len(a9a)) {
		t.Errorf("object %+v: want the uploaded compressed copy", o)
	}
}

// TestLoadParquetOnMinIO reads an s3:// prefix of two Parquet files (their
// footers and row groups by ranged GETs) as one data set: the rows of the
// same files read locally.
func TestLoadParquetOnMinIO(t *testing.T) {
	srv := miniotest.Start(t)
	srv.SetEnv(t)
	bucket := srv.NewBucket(t)
	ctx := context.Background()
	data, err := blobs.Open(ctx, "s3://"+bucket+"/pq", blobs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	pq := readFile(t, "../../dataset/testdata/people.parquet")
	for _, name := range []string{"part-0.parquet", "part-1.parquet"} {
		if err := data.Put(ctx, name, bytes.NewReader(pq)); err != nil {
			t.Fatal(err)
		}
	}
	pipeline := func(src string) string {
		return fmt.Sprintf("load \"people\" {\n  source = %q\n  format = \"parquet\"\n  label = \"clicked\"\n  ignore = [\"id\"]\n  tasks = 3\n}\n", src)
	}
	ref := runtimetest.New(t, pipeline("parts"))
	ref.Write("parts/part-0.parquet", string(pq))
	ref.Write("parts/part-1.parquet", string(pq))
	ref.MustApply()
	refTrain := ref.Dataset(ref.Output("load.people").GetAttr("train"))

	h := runtimetest.New(t, pipeline("s3://"+bucket+"/pq/"))
	h.MustApply()
	tr := h.Dataset(h.Output("load.people").GetAttr("train"))
	if tr.Rows != 600 || len(tr.Source.Objects) != 2 {
		t.Fatalf("%d rows from %d objects, want 600 from 2", tr.Rows, len(tr.Source.Objects))
	}
	sameDataset(t, h, "s3 parquet", tr, refTrain, runtimetest.RowDigests(ref.Rows(refTrain)))
}
