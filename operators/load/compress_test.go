package load_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/stratus-ml/stratus/dataset/gen"
	"github.com/stratus-ml/stratus/dataset/manifest"
	"github.com/stratus-ml/stratus/executor"
	"github.com/stratus-ml/stratus/executor/runtime/runtimetest"
)

func gzipBytes(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func zstdBytes(t testing.TB, b []byte) []byte {
	t.Helper()
	w, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	return w.EncodeAll(b, nil)
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sameDataset checks that got holds exactly ref's rows, in order, with the
// same statistics and, read into the same partitions, content digest.
func sameDataset(t *testing.T, h *runtimetest.Harness, what string, got, ref *manifest.Manifest, refRows []string) {
	t.Helper()
	if got.Rows != ref.Rows || got.Features != ref.Features || got.Positives != ref.Positives || got.NNZ != ref.NNZ {
		t.Errorf("%s: %d rows, %d features, %d positives, %d entries; plain: %d, %d, %d, %d", what,
			got.Rows, got.Features, got.Positives, got.NNZ, ref.Rows, ref.Features, ref.Positives, ref.NNZ)
	}
	rows := runtimetest.RowDigests(h.Rows(got))
	if strings.Join(rows, ",") != strings.Join(refRows, ",") {
		t.Errorf("%s: rows differ from the plain file's", what)
	}
	if got.StatsDigest != ref.StatsDigest {
		t.Errorf("%s: statistics digest %s, plain %s", what, got.StatsDigest, ref.StatsDigest)
	}
	if len(got.Partitions) == len(ref.Partitions) && got.Digest != ref.Digest {
		t.Errorf("%s: content digest %s, plain %s", what, got.Digest, ref.Digest)
	}
}

// TestLoadCompressed loads a9a gzipped, zstd-compressed and (heart_scale)
// bzip2-compressed, named without a telling extension, and checks each gives
// exactly the rows, statistics and content digest of the plain file; then a
// directory of several compressed parts beside a plain one, cut into tasks.
func TestLoadCompressed(t *testing.T) {
	a9a := readFile(t, testdata(t, "a9a"))
	parts := bytes.SplitAfter(a9a, []byte("\n"))
	third := len(parts) / 3
	h := runtimetest.New(t, `
load "plain" {
  source = "a9a"
}
load "gz" {
  source = "a9a.data"
}
load "zst" {
  source = "a9a.zst"
}
load "parts" {
  source = "parts"
  tasks  = 3
}
load "heart" {
  source = "heart_scale"
}
load "heart_bz2" {
  source = "heart.bin"
}
`)
	h.Write("a9a", string(a9a))
	h.Write("a9a.data", string(gzipBytes(t, a9a)))
	h.Write("a9a.zst", string(zstdBytes(t, a9a)))
	h.Write("parts/1.gz", string(gzipBytes(t, bytes.Join(parts[:third], nil))))
	h.Write("parts/2", string(bytes.Join(parts[third:2*third], nil)))
	h.Write("parts/3.zst", string(zstdBytes(t, bytes.Join(parts[2*third:], nil))))
	h.Write("heart_scale", string(readFile(t, testdata(t, "heart_scale"))))
	h.Write("heart.bin", string(readFile(t, "testdata/heart_scale.bz2")))
	h.MustApply()
	train := func(stage string) *manifest.Manifest { return h.Dataset(h.Output(stage).GetAttr("train")) }
	ref := train("load.plain")
	refRows := runtimetest.RowDigests(h.Rows(ref))
	for _, c := range []struct{ stage, codec string }{{"load.gz", "gzip"}, {"load.zst", "zstd"}} {
		m := train(c.stage)
		sameDataset(t, h, c.stage, m, ref, refRows)
		if o := m.Source.Objects; len(o) != 1 || o[0].Compression != c.codec || m.Source.Lines != ref.Source.Lines {
			t.Errorf("%s: source %+v (lines %d, plain %d)", c.stage, o, m.Source.Lines, ref.Source.Lines)
		}
	}
	parted := train("load.parts")
	sameDataset(t, h, "load.parts", parted, ref, refRows)
	var codecs []string
	for _, o := range parted.Source.Objects {
		codecs = append(codecs, filepath.Base(o.Name)+"="+o.Compression)
	}
	if got := strings.Join(codecs, " "); got != "1.gz=gzip 2= 3.zst=zstd" {
		t.Errorf("parts: objects %s", got)
	}
	heart := train("load.heart")
	sameDataset(t, h, "load.heart_bz2", train("load.heart_bz2"), heart, runtimetest.RowDigests(h.Rows(heart)))
}

// TestLoadCompressedBadLine: a bad line in a compressed file is reported at
// its line of the decompressed content.
func TestLoadCompressedBadLine(t *testing.T) {
	lines := a9aLines(t, 3000)
	lines[2499] = "+1 3:1 7:x\n"
	h := runtimetest.New(t, `
load "bad" {
  source = "bad.gz"
}
`)
	h.Write("bad.gz", string(gzipBytes(t, []byte(strings.Join(lines, "")))))
	msg, _ := stageError(t, h, "load.bad")
	if want := `bad.gz:2500:8: invalid value "7:x"`; !strings.Contains(msg, want) {
		t.Errorf("error does not say %q:\n%s", want, msg)
	}
}

// TestLoadCompressedCorrupt: a truncated gzip file fails the stage saying so,
// after the lines it could read, rather than parsing a cut line or retrying.
func TestLoadCompressedCorrupt(t *testing.T) {
	gz := gzipBytes(t, readFile(t, testdata(t, "a9a")))
	h := runtimetest.New(t, `
load "cut" {
  source = "cut.gz"
}
`)
	h.Write("cut.gz", string(gz[:len(gz)/2]))
	msg, _ := stageError(t, h, "load.cut")
	for _, want := range []string{"cut.gz: after line ", "the gzip data does not decode", "truncated or corrupt", "gzip -t"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error does not say %q:\n%s", want, msg)
		}
	}
}

// TestLoadForeignContent: content load cannot read fails before any task
// runs, saying what the file seems to be and what to do, at file and line.
func TestLoadForeignContent(t *testing.T) {
	utf16 := func(s string) string {
		var b strings.Builder
		b.WriteString("\xff\xfe")
		for _, r := range s {
			b.WriteRune(r)
			b.WriteByte(0)
		}
		return b.String()
	}
	for _, c := range []struct {
		name, format, file, content string
		want                        []string
	}{
		{"xz", "libsvm", "data.svm.xz", string(readFile(t, "testdata/tiny.svm.xz")), []string{"data.svm.xz:1: this seems to be xz-compressed data, not libsvm text", "xz -d", "gzip, zstd or bzip2"}},
		{"lz4", "libsvm", "data", string(readFile(t, "testdata/tiny.svm.lz4")), []string{"data:1: this seems to be LZ4-compressed data", "lz4 -d"}},
		{"zip", "csv", "data.zip", string(readFile(t, "testdata/tiny.zip")), []string{"data.zip:1: this seems to be a zip archive, not csv text", "unzip it"}},
		{"parquet as csv", "csv", "data.csv", "PAR1\x15\x04\x15\x10\x15\x14L\x15\x02\x15\x00\x12\x00\x00", []string{"data.csv:1: this seems to be a Parquet file, not csv text", `set format = "parquet"`}},
		{"utf16", "csv", "data.csv", utf16("a,b,label\n1,2,1\n"), []string{"data.csv:1: this seems to be UTF-16 text, not csv text", "iconv -f UTF-16 -t UTF-8"}},
		{"binary", "libsvm", "model.bin", "+1 1:1\n-1 2:1\n+1 3:\x00\x01\x02\x03", []string{"model.bin:3:6: this seems to be binary data, not libsvm text", "byte 0x00 at offset 19"}},
		{"gzipped binary", "libsvm", "model.gz", string(gzipBytes(t, []byte("+1 1:1\n\x00\x00\x00\x01"))), []string{"model.gz:2:1: this seems to be gzip-compressed binary data, not libsvm text"}},
		{"jsonl as libsvm", "libsvm", "rows.json", "{\"label\": 1, \"x\": 2}\n", []string{"rows.json:1:1: the file seems to hold JSON lines", `set format = "jsonl"`}},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := runtimetest.New(t, fmt.Sprintf(`
load "x" {
  source = %q
  format = %q
}
`, c.file, c.format))
			h.Write(c.file, c.content)
			msg, rec := stageError(t, h, "load.x")
			for _, want := range c.want {
				if !strings.Contains(msg, want) {
					t.Errorf("error does not say %q:\n%s", want, msg)
				}
			}
			if n := rec.Count(executor.TaskStarted, "load.x"); n != 0 {
				t.Errorf("%d tasks ran; the check comes first", n)
			}
		})
	}
}

// TestLoadCompressedTasks: tasks = 4 on one gzipped file is one task, and a
// note says why.
func TestLoadCompressedTasks(t *testing.T) {
	h := runtimetest.New(t, "load \"one\" {\n  source = \"a9a.gz\"\n  tasks  = 4\n}\n")
	h.Write("a9a.gz", string(gzipBytes(t, readFile(t, testdata(t, "a9a")))))
	_, rec := h.MustApply()
	if n := rec.Count(executor.TaskStarted, "load.one"); n != 1 {
		t.Errorf("%d tasks, want 1", n)
	}
	if notes := strings.Join(rec.Notes("load.one"), "\n"); !strings.Contains(notes, "source: 1 task(s), not tasks = 4: compressed files cannot be split") ||
		!strings.Contains(notes, "source: 1 compressed file(s) (gzip), each streamed whole by one task, in 1 task(s)") {
		t.Errorf("notes: %s", notes)
	}
}

// TestLoadCompressedEmpty: a gzip file of nothing holds no rows (it is not
// corrupt); a file of gzip's magic bytes and garbage is.
func TestLoadCompressedEmpty(t *testing.T) {
	h := runtimetest.New(t, "load \"x\" {\n  source = \"empty.gz\"\n}\n")
	h.Write("empty.gz", string(gzipBytes(t, nil)))
	msg, _ := stageError(t, h, "load.x")
	if want := `source "empty.gz" holds no rows: no lines`; !strings.Contains(msg, want) {
		t.Errorf("error does not say %q:\n%s", want, msg)
	}
	h = runtimetest.New(t, "load \"x\" {\n  source = \"junk.gz\"\n}\n")
	h.Write("junk.gz", "\x1f\x8bjunk that is not deflate")
	msg, _ = stageError(t, h, "load.x")
	if want := `junk.gz: gzip-compressed, but its first bytes do not decode: the file is truncated or corrupt; check it with gzip -t`; !strings.Contains(msg, want) {
		t.Errorf("error does not say %q:\n%s", want, msg)
	}
}

// TestLoadFramed: a zstd file cut into frames as pzstd writes them, and a
// gzip file of BGZF members (bgzip), are split at frame boundaries into
// tasks = 4 ranges, decoded in parallel, and give exactly the plain file's
// rows, statistics and digest; a note says so. A bad line in a later range
// is reported at its line of the whole file.
func TestLoadFramed(t *testing.T) {
	a9a := readFile(t, testdata(t, "a9a"))
	h := runtimetest.New(t, `
load "plain" {
  source = "a9a"
}
load "pzstd" {
  source = "a9a.zst"
  tasks  = 4
}
load "bgzf" {
  source = "a9a.gz"
  tasks  = 4
}
`)
	h.Write("a9a", string(a9a))
	h.Write("a9a.zst", string(gen.Pzstd(a9a, 256<<10)))
	h.Write("a9a.gz", string(gen.BGZF(a9a)))
	_, rec := h.MustApply()
	train := func(stage string) *manifest.Manifest { return h.Dataset(h.Output(stage).GetAttr("train")) }
	ref := train("load.plain")
	refRows := runtimetest.RowDigests(h.Rows(ref))
	for _, c := range []struct{ stage, codec, framing string }{{"load.pzstd", "zstd", "pzstd"}, {"load.bgzf", "gzip", "bgzf"}} {
		m := train(c.stage)
		sameDataset(t, h, c.stage, m, ref, refRows)
		if o := m.Source.Objects; len(o) != 1 || o[0].Compression != c.codec || m.Source.Lines != ref.Source.Lines {
			t.Errorf("%s: source %+v (lines %d, plain %d)", c.stage, o, m.Source.Lines, ref.Source.Lines)
		}
		if n := rec.Count(executor.TaskStarted, c.stage); n != 4 {
			t.Errorf("%s: %d tasks, want 4", c.stage, n)
		}
		want := fmt.Sprintf("source: 1 compressed file(s) cut into frames (%s), split at frame boundaries and decoded in parallel", c.framing)
		if notes := strings.Join(rec.Notes(c.stage), "\n"); !strings.Contains(notes, want) || strings.Contains(notes, "streamed whole") {
			t.Errorf("%s: notes: %s", c.stage, notes)
		}
	}

	lines := a9aLines(t, 20000)
	lines[17499] = "+1 3:1 7:x\n"
	h = runtimetest.New(t, "load \"bad\" {\n  source = \"bad.gz\"\n  tasks  = 4\n}\n")
	h.Write("bad.gz", string(gen.BGZF([]byte(strings.Join(lines, "")))))
	msg, _ := stageError(t, h, "load.bad")
	if want := `bad.gz:17500:8: invalid value "7:x"`; !strings.Contains(msg, want) {
		t.Errorf("error does not say %q:\n%s", want, msg)
	}
}

// TestLoadCompressedShares: one compressed file that states its content's
// size (zstd's frame header, gzip's trailer) loads into exactly the plain
// file's partitions, statistics and content digest when the plain file is
// cut into several tasks (tasks = 3 here, as a large file is): its one task
// cuts the rows into pieces where the plain file's tasks start. A gzip file
// of two members states only the last one's size: it loads the same rows,
// into other partitions, and a note says so; a zstd stream written without
// its size is one piece. On 1, 2 and 4 cores (GOMAXPROCS: from 2 on, the
// stream is parsed on several goroutines).
func TestLoadCompressedShares(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	for _, procs := range []int{1, 2, 4} {
		t.Run(fmt.Sprintf("procs=%d", procs), func(t *testing.T) {
			runtime.GOMAXPROCS(procs)
			testLoadCompressedShares(t)
		})
	}
}

func testLoadCompressedShares(t *testing.T) {
	a9a := readFile(t, testdata(t, "a9a"))
	half := bytes.IndexByte(a9a[len(a9a)/2:], '\n') + len(a9a)/2 + 1
	var streamed bytes.Buffer
	zw, err := zstd.NewWriter(&streamed)
	if err != nil {
		t.Fatal(err)
	}
	zw.Write(a9a)
	zw.Close()
	stage := func(name, file string) string {
		return fmt.Sprintf("load %q {\n  source = %q\n  tasks  = 3\n  split  = { test = 0.25, seed = 7 }\n}\n", name, file)
	}
	// tail's last two thirds are blank lines: the plain file's last two tasks,
	// and the compressed file's last two cuts, find no row.
	tail := append(append([]byte{}, a9a...), bytes.Repeat([]byte("\n"), 2*len(a9a))...)
	h := runtimetest.New(t, stage("plain", "a9a")+stage("gz", "a9a.gz")+stage("zst", "a9a.zst")+stage("members", "members.gz")+stage("streamed", "streamed.zst")+
		stage("tailplain", "tail")+stage("tailzst", "tail.zst"))
	h.Write("tail", string(tail))
	h.Write("tail.zst", string(zstdBytes(t, tail)))
	h.Write("a9a", string(a9a))
	h.Write("a9a.gz", string(gzipBytes(t, a9a)))
	h.Write("a9a.zst", string(zstdBytes(t, a9a)))
	h.Write("members.gz", string(append(gzipBytes(t, a9a[:half]), gzipBytes(t, a9a[half:])...)))
	h.Write("streamed.zst", streamed.String())
	_, rec := h.MustApply()
	for _, ds := range []string{"train", "test"} {
		get := func(stage string) *manifest.Manifest { return h.Dataset(h.Output(stage).GetAttr(ds)) }
		ref := get("load.plain")
		if len(ref.Partitions) != 3 {
			t.Fatalf("%s: the plain file in 3 tasks has %d partitions", ds, len(ref.Partitions))
		}
		refRows := runtimetest.RowDigests(h.Rows(ref))
		for _, stage := range []string{"load.gz", "load.zst"} {
			m := get(stage)
			if len(m.Partitions) != len(ref.Partitions) {
				t.Errorf("%s %s: %d partitions, plain %d", stage, ds, len(m.Partitions), len(ref.Partitions))
			}
			sameDataset(t, h, stage+" "+ds, m, ref, refRows)
		}
		tailRef := get("load.tailplain")
		if m := get("load.tailzst"); len(m.Partitions) != len(tailRef.Partitions) {
			t.Errorf("load.tailzst %s: %d partitions, plain %d", ds, len(m.Partitions), len(tailRef.Partitions))
		} else {
			sameDataset(t, h, "load.tailzst "+ds, m, tailRef, runtimetest.RowDigests(h.Rows(tailRef)))
		}
		for _, stage := range []string{"load.members", "load.streamed"} {
			m := get(stage)
			if stage == "load.streamed" && len(m.Partitions) != 1 {
				t.Errorf("%s %s: %d partitions, want 1 (its size is not known before it is read)", stage, ds, len(m.Partitions))
			}
			if m.Digest == ref.Digest {
				t.Errorf("%s %s: the plain file's digest, from other partitions", stage, ds)
			}
			if rows := runtimetest.RowDigests(h.Rows(m)); strings.Join(rows, ",") != strings.Join(refRows, ",") {
				t.Errorf("%s %s: rows differ from the plain file's", stage, ds)
			}
		}
	}
	for _, stage := range []string{"load.gz", "load.zst"} {
		if notes := strings.Join(rec.Notes(stage), "\n"); !strings.Contains(notes, "cut into 3 pieces, as the plain file's 3 tasks would cut it") {
			t.Errorf("%s notes: %s", stage, notes)
		}
	}
	if notes := strings.Join(rec.Notes("load.members"), "\n"); !strings.Contains(notes, fmt.Sprintf("members.gz: its header stated %d bytes of content, it holds %d", len(a9a)-half, len(a9a))) {
		t.Errorf("members notes: %s", notes)
	}
}
