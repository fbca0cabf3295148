package dataset_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"testing"

	"github.com/stratus-ml/stratus/dataset"
	"github.com/stratus-ml/stratus/dataset/gen"
)

// framedText is lines of varied length, some longer than a frame.
func framedText() []byte {
	var b bytes.Buffer
	for i := 0; i < 20000; i++ {
		fmt.Fprintf(&b, "%d %s\n", i, strings.Repeat("x", i%97))
		if i%5000 == 7 {
			b.WriteString(strings.Repeat("long", 30000) + "\n")
		}
	}
	return b.Bytes()
}

// lineFormat is a Format that keeps every line (with its "\n").
type lineFormat struct{ lines []string }

func (*lineFormat) Name() string  { return "lines" }
func (*lineFormat) Features() int { return 0 }
func (l *lineFormat) ParseLine(line []byte, _ *dataset.Row) (bool, error) {
	l.lines = append(l.lines, string(line)+"\n")
	return true, nil
}

// readRanges reads a framed object cut into n byte ranges, as load's tasks
// do (OpenFrames, then a Scanner), and returns the lines each range reads.
func readRanges(t *testing.T, obj []byte, codec, framing string, n int) [][]string {
	t.Helper()
	var out [][]string
	for k := 0; k < n; k++ {
		start, end := int64(len(obj)*k/n), int64(len(obj)*(k+1)/n)
		rc, opts, err := dataset.OpenFrames(bytes.NewReader(obj[start:]), codec, framing, start, end)
		if err != nil {
			t.Fatalf("range %d: %v", k, err)
		}
		f := &lineFormat{}
		sc := dataset.NewScanner(rc, f, opts)
		var row dataset.Row
		for {
			err := sc.Next(&row)
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("range %d: %v", k, err)
			}
		}
		rc.Close()
		out = append(out, f.lines)
	}
	return out
}

// Every line of a framed file is read by exactly one range, whole, however
// the file is cut: ranges smaller than a frame, holding none or several
// frame starts, ranges cut inside a frame's header.
func TestOpenFramesTiles(t *testing.T) {
	text := framedText()
	for _, c := range []struct {
		codec, framing string
		obj            []byte
	}{
		{dataset.CodecZstd, dataset.FramingPzstd, gen.Pzstd(text, 100<<10)},
		{dataset.CodecGzip, dataset.FramingBGZF, gen.BGZF(text)},
	} {
		if got := dataset.Framing(c.obj[:64]); got != c.framing {
			t.Fatalf("%s: Framing = %q", c.framing, got)
		}
		for _, n := range []int{1, 2, 3, 7, 40, 200} {
			var got []string
			for _, r := range readRanges(t, c.obj, c.codec, c.framing, n) {
				got = append(got, r...)
			}
			if joined := strings.Join(got, ""); joined != string(text) {
				t.Errorf("%s in %d ranges: %d lines, %d bytes; want %d bytes", c.framing, n, len(got), len(joined), len(text))
			}
		}
	}
}

// Files written by the tools themselves, when they are installed.
func TestOpenFramesTools(t *testing.T) {
	text := bytes.Repeat(framedText(), 8) // pzstd cuts frames of several MB
	for _, c := range []struct {
		tool           []string
		codec, framing string
	}{
		{[]string{"pzstd", "-q", "-c", "-p", "2"}, dataset.CodecZstd, dataset.FramingPzstd},
		{[]string{"bgzip", "-c"}, dataset.CodecGzip, dataset.FramingBGZF},
	} {
		t.Run(c.tool[0], func(t *testing.T) {
			if _, err := exec.LookPath(c.tool[0]); err != nil {
				t.Skipf("%s is not installed", c.tool[0])
			}
			cmd := exec.Command(c.tool[0], c.tool[1:]...)
			cmd.Stdin = bytes.NewReader(text)
			obj, err := cmd.Output()
			if err != nil {
				t.Fatalf("%s: %v", c.tool[0], err)
			}
			if got := dataset.Framing(obj[:64]); got != c.framing {
				t.Fatalf("%s: Framing = %q", c.tool[0], got)
			}
			var got []string
			for _, r := range readRanges(t, obj, c.codec, c.framing, 5) {
				got = append(got, r...)
			}
			if joined := strings.Join(got, ""); joined != string(text) {
				t.Errorf("%s in 5 ranges: %d bytes, want %d", c.tool[0], len(joined), len(text))
			}
		})
	}
}

// Bytes where a frame should start and does not, and a frame cut short,
// are corrupt data, not the end of the range.
func TestOpenFramesCorrupt(t *testing.T) {
	obj := gen.Pzstd(framedText(), 100<<10)
	second := 12 + int(uint32(obj[8])|uint32(obj[9])<<8|uint32(obj[10])<<16|uint32(obj[11])<<24)
	broken := append([]byte(nil), obj...)
	broken[second] ^= 0xff
	for name, b := range map[string][]byte{"broken marker": broken, "cut short": obj[:len(obj)-100]} {
		rc, _, err := dataset.OpenFrames(bytes.NewReader(b), dataset.CodecZstd, dataset.FramingPzstd, 0, int64(len(b)))
		if err == nil {
			_, err = io.ReadAll(rc)
			rc.Close()
		}
		var ce *dataset.CorruptError
		if !errors.As(err, &ce) {
			t.Errorf("%s: got %v, want a CorruptError", name, err)
		}
	}
}
