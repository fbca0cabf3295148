package partition_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/stratus-ml/stratus/blob"
	"github.com/stratus-ml/stratus/blob/s3blob"
	"github.com/stratus-ml/stratus/blob/s3blob/miniotest"
	"github.com/stratus-ml/stratus/dataset"
	"github.com/stratus-ml/stratus/dataset/partition"
)

// TestLoadPathOnMinIO runs the data path of a load stage against a real S3
// server: a9a split into byte ranges read with ranged GETs, parsed, and
// written as partitions, which are read back and checked.
func TestLoadPathOnMinIO(t *testing.T) {
	srv := miniotest.Start(t)
	ctx := context.Background()
	st, err := s3blob.New(ctx, s3blob.Options{
		Bucket: srv.NewBucket(t), Prefix: "pipeline", Region: srv.Region, Endpoint: srv.Endpoint,
		AccessKeyID: srv.AccessKey, SecretAccessKey: srv.SecretKey,
	})
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile("../../testdata/a9a")
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Put(ctx, "input/a9a", bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	const tasks = 4
	size := int64(len(data))
	var parts []partition.Part
	var lines int64
	for k := int64(0); k < tasks; k++ {
		start, end := k*size/tasks, (k+1)*size/tasks
		rc, opts, err := dataset.OpenRange(ctx, st, "input/a9a", start, end)
		if err != nil {
			t.Fatal(err)
		}
		sc := dataset.NewScanner(rc, dataset.NewLIBSVM(), opts)
		w := partition.NewStoreWriter(ctx, st, fmt.Sprintf("out/task-%d/", k), 256<<10)
		var row dataset.Row
		for {
			err := sc.Next(&row)
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := w.Add(&row); err != nil {
				t.Fatal(err)
			}
		}
		rc.Close()
		lines += sc.Lines()
		ps, err := w.Close()
		if err != nil {
			t.Fatal(err)
		}
		parts = append(parts, ps...)
	}
	if lines != 32561 {
		t.Errorf("ranges consumed %d lines, want 32561", lines)
	}
	var rows, nnz, pos int
	for _, pt := range parts {
		p, err := partition.Read(ctx, st, pt.Key)
		if err != nil {
			t.Fatal(err)
		}
		if !p.AllOnes() || p.IndexWidth() != 2 {
			t.Errorf("%s: a9a is binary with 123 features: all-ones %v, width %d", pt.Key, p.AllOnes(), p.IndexWidth())
		}
		rows += p.Rows()
		nnz += p.NNZ()
		for _, l := range p.Labels() {
			if l > 0 { // labels are stored as the file spells them: a9a's are -1 and +1
				pos++
			}
		}
	}
	if rows != 32561 || nnz != 451592 || pos != 7841 {
		t.Errorf("partitions hold %d rows, %d entries, %d positives; want 32561, 451592, 7841", rows, nnz, pos)
	}
	listed, err := st.List(ctx, "out/")
	if err != nil || len(listed) != len(parts) {
		t.Errorf("List(out/) = %d objects, %v; want %d", len(listed), err, len(parts))
	}

	// A damaged partition on S3 is caught and named.
	obj, _ := st.Get(ctx, parts[0].Key)
	raw, _ := io.ReadAll(obj)
	obj.Close()
	raw[len(raw)-5] ^= 0x01
	st.Put(ctx, "out/damaged", bytes.NewReader(raw))
	_, err = partition.Read(ctx, st, "out/damaged")
	if !errors.Is(err, partition.ErrCorrupt) || !strings.Contains(err.Error(), st.URI("out/damaged")) {
		t.Errorf("damaged partition: %v", err)
	}
	if _, err := partition.Read(ctx, st, "out/missing"); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("missing partition: %v", err)
	}
}
