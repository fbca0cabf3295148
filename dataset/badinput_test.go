package dataset_test

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stratus-ml/stratus/blob"
	"github.com/stratus-ml/stratus/blob/fileblob"
	"github.com/stratus-ml/stratus/dataset"
)

// TestBadInput runs each kind of bad input from a file through OpenRange and
// the Scanner, as load will: good lines parse, each bad line gives one
// ParseError naming the object, line, column and offending text, and
// nothing panics.
func TestBadInput(t *testing.T) {
	criteo, _ := dataset.NewCriteo(dataset.CriteoOptions{})
	tsvRow := "1" + strings.Repeat("\t5", 13) + strings.Repeat("\tab12", 26)
	huge := "1" + strings.Repeat(" 7:1", 3<<20) // a 12 MB line with a duplicate index
	for _, tc := range []struct {
		name     string
		format   dataset.Format
		data     string
		rows     int
		reason   string // "" when no error is expected
		line     int64
		column   int
		text     string
		maxLineB int
	}{
		{name: "empty file", format: dataset.NewLIBSVM(), data: ""},
		{name: "only comments", format: dataset.NewLIBSVM(), data: "# a9a, converted\n# by hand\n"},
		{name: "non-UTF-8 bytes", format: dataset.NewLIBSVM(), data: "1 1:1\n1 2:\xc3\x28\n", rows: 1,
			reason: dataset.ReasonValue, line: 2, column: 3, text: "2:\xc3\x28"},
		{name: "10 MB single line", format: dataset.NewLIBSVM(), data: huge, reason: dataset.ReasonDuplicate,
			line: 1, column: 7, text: "7:1"},
		{name: "10 MB single line over the limit", format: dataset.NewLIBSVM(), data: huge + "\n1 1:1", rows: 1,
			reason: dataset.ReasonLineTooLong, line: 1, column: 1, text: huge[:60] + "...", maxLineB: 1 << 20},
		{name: "index 0", format: dataset.NewLIBSVM(), data: "1 0:1\n", reason: dataset.ReasonIndex, line: 1, column: 3, text: "0:1"},
		{name: "negative index", format: dataset.NewLIBSVM(), data: "\n1 3:1 -4:1", reason: dataset.ReasonIndex, line: 2, column: 7, text: "-4:1"},
		{name: "duplicate index", format: dataset.NewLIBSVM(), data: "1 3:1 9:1 3:2\n", reason: dataset.ReasonDuplicate, line: 1, column: 11, text: "3:2"},
		{name: "NaN", format: dataset.NewLIBSVM(), data: "1 3:nan\n", reason: dataset.ReasonNonFinite, line: 1, column: 3, text: "3:nan"},
		{name: "Inf", format: dataset.NewLIBSVM(), data: "1 3:-Infinity\n", reason: dataset.ReasonNonFinite, line: 1, column: 3, text: "3:-Infinity"},
		{name: "label x", format: dataset.NewLIBSVM(), data: "1 1:1\r\nx 1:1\r\n", rows: 1, reason: dataset.ReasonLabel, line: 2, column: 1, text: "x"},
		{name: "label nan", format: dataset.NewLIBSVM(), data: "1 1:1\r\nnan 1:1\r\n", rows: 1, reason: dataset.ReasonLabel, line: 2, column: 1, text: "nan"},
		{name: "TSV row with 39 columns", format: criteo, data: tsvRow + "\n" + strings.TrimSuffix(tsvRow, "\tab12") + "\n", rows: 1,
			reason: dataset.ReasonColumns, line: 2, column: 1},
		{name: "TSV row with 41 columns", format: criteo, data: tsvRow + "\textra\n", reason: dataset.ReasonColumns, line: 1, column: len(tsvRow) + 2, text: "extra"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			os.WriteFile(filepath.Join(dir, "input"), []byte(tc.data), 0o644)
			st, _ := fileblob.New(dir)
			rc, opts, err := dataset.OpenRange(context.Background(), st, "input", 0, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			opts.MaxLineBytes = tc.maxLineB
			sc := dataset.NewScanner(rc, tc.format, opts)
			var row dataset.Row
			var errs []*dataset.ParseError
			rows := 0
			for {
				err := sc.Next(&row)
				if err == io.EOF {
					break
				}
				if err != nil {
					var pe *dataset.ParseError
					if !errors.As(err, &pe) {
						t.Fatal(err)
					}
					errs = append(errs, pe)
					continue
				}
				rows++
			}
			if rows != tc.rows {
				t.Errorf("%d rows, want %d", rows, tc.rows)
			}
			if tc.reason == "" {
				if len(errs) > 0 {
					t.Errorf("unexpected error %v", errs[0])
				}
				return
			}
			if len(errs) != 1 {
				t.Fatalf("%d errors, want 1", len(errs))
			}
			pe := errs[0]
			if pe.Reason != tc.reason || pe.Line != tc.line || pe.Column != tc.column || (tc.text != "" && pe.Text != tc.text) {
				t.Errorf("got %s %d:%d %q; want %s %d:%d %q", pe.Reason, pe.Line, pe.Column, pe.Text, tc.reason, tc.line, tc.column, tc.text)
			}
			msg := pe.Error()
			if !strings.HasPrefix(msg, st.URI("input")+":") || !utf8.ValidString(msg) || len(msg) > 400 {
				t.Errorf("message %q should start with the object's URI and be short, valid UTF-8", msg)
			}
		})
	}
}

func TestBadInputMissingObject(t *testing.T) {
	st, _ := fileblob.New(t.TempDir())
	_, _, err := dataset.OpenRange(context.Background(), st, "train/part-0.svm", 100, 200)
	if !errors.Is(err, blob.ErrNotFound) || !strings.Contains(err.Error(), st.URI("train/part-0.svm")) {
		t.Errorf("missing object: %v", err)
	}
}
