package load

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"golang.org/x/sync/errgroup"

	"github.com/stratus-ml/stratus/dataset"
	"github.com/stratus-ml/stratus/operators"
)

// sniffConcurrency bounds the objects whose first bytes are read at once.
const sniffConcurrency = 16

// sniffAll reads the start of every non-empty object of the inputs, records
// its compression, and fails on content the format cannot read (a Parquet
// file given as CSV, an xz file, UTF-16, binary data), saying what the file
// seems to be and what to do. It runs before anything is uploaded or parsed.
func sniffAll(ctx context.Context, s operators.Stage, format string, inputs []*input) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(sniffConcurrency)
	for _, in := range inputs {
		for i := range in.objects {
			o := &in.objects[i]
			if o.size == 0 {
				continue
			}
			g.Go(func() error { return o.sniff(gctx, s, format) })
		}
	}
	return g.Wait()
}

// sniff reads o's first bytes (and, when compressed, the first bytes of its
// content) and checks them against format.
func (o *object) sniff(ctx context.Context, s operators.Stage, format string) error {
	raw, err := o.rawHead(ctx, s, dataset.SniffBytes)
	if err != nil {
		return err
	}
	c := dataset.Sniff(raw)
	if format == "parquet" {
		if c.Format == "parquet" {
			return nil
		}
		what := c.Describe()
		if c.Codec != "" {
			what = c.Codec + "-compressed " + dataset.Sniff(decodeHead(raw, c.Codec)).Describe()
		}
		return fmt.Errorf("%s: not a Parquet file (a Parquet file starts with \"PAR1\"; this seems to be %s)%s", o.name, what, formatAdvice(raw, c))
	}
	if c.Kind != "" {
		return contentError(o.name, format, "", c)
	}
	text := raw
	if c.Codec != "" {
		o.codec = c.Codec
		o.framing = dataset.Framing(raw)
		o.content = dataset.ContentSize(c.Codec, raw, nil, o.size)
		var err error
		text, err = decodeHeadErr(raw, c.Codec)
		if len(text) == 0 && err != nil && (int64(len(raw)) == o.size || !errors.Is(err, io.ErrUnexpectedEOF)) {
			return fmt.Errorf("%s: %s-compressed, but its first bytes do not decode: the file is truncated or corrupt; check it with %s -t", o.name, c.Codec, testCommand(c.Codec))
		}
		if inner := dataset.Sniff(text); inner.Kind != "" || inner.Codec != "" {
			if inner.Codec != "" {
				inner.Kind, inner.Advice = inner.Codec+"-compressed data", "decompress it once; load undoes one layer of compression"
			}
			return contentError(o.name, format, c.Codec+"-compressed ", inner)
		}
	}
	if guess := guessText(text); guess == "jsonl" && format != "jsonl" {
		return fmt.Errorf("%s:1:1: the file seems to hold JSON lines (its first line starts with \"{\"), not %s; set format = \"jsonl\"", o.name, format)
	}
	return nil
}

// contentError says what an object seems to be and what to do, at the
// line it was found on for binary data.
func contentError(name, format, layer string, c dataset.Content) error {
	where := name + ":1"
	if c.Line > 0 {
		where = fmt.Sprintf("%s:%d:%d", name, c.Line, c.Column)
	}
	advice := c.Advice
	if c.Format != "" && c.Format != format {
		advice = fmt.Sprintf("set format = %q (this load has format = %q)", c.Format, format)
	}
	return fmt.Errorf("%s: this seems to be %s%s, not %s text; %s", where, layer, c.Kind, format, advice)
}

// formatAdvice suggests the text format a non-Parquet object seems to be in.
func formatAdvice(raw []byte, c dataset.Content) string {
	if c.Kind != "" {
		return "; " + c.Advice
	}
	text := raw
	if c.Codec != "" {
		text = decodeHead(raw, c.Codec)
	}
	if g := guessText(text); g != "" {
		return fmt.Sprintf("; it looks like %s: set format = %q", g, g)
	}
	return "; set format to the file's format (libsvm, criteo, csv or jsonl)"
}

// guessText names the text format the start of a file seems to be in, or
// "" when it cannot tell.
func guessText(text []byte) string {
	line := text
	for {
		nl := bytes.IndexByte(line, '\n')
		first := line
		if nl >= 0 {
			first = line[:nl]
		}
		if t := bytes.TrimSpace(first); len(t) > 0 && t[0] != '#' {
			line = t
			break
		}
		if nl < 0 {
			return ""
		}
		line = line[nl+1:]
	}
	switch {
	case line[0] == '{':
		return "jsonl"
	case bytes.Count(line, []byte{'\t'}) == dataset.CriteoColumns-1:
		return "criteo"
	case bytes.Contains(line, []byte{':'}) && !bytes.Contains(line, []byte{','}):
		return "libsvm"
	case bytes.Contains(line, []byte{','}):
		return "csv"
	}
	return ""
}

// decodeHead decompresses as much of raw, an object's first bytes, as it
// holds (a cut stream ends early, which is expected here).
func decodeHead(raw []byte, codec string) []byte {
	b, _ := decodeHeadErr(raw, codec)
	return b
}

// decodeHeadErr is decodeHead with the decoder's error: io.ErrUnexpectedEOF
// where raw is only the start of the stream.
func decodeHeadErr(raw []byte, codec string) ([]byte, error) {
	zr, err := dataset.Decompress(bytes.NewReader(raw), codec)
	if err != nil {
		return nil, err
	}
	defer zr.Close()
	b, err := io.ReadAll(io.LimitReader(zr, dataset.SniffBytes))
	if err == nil && len(b) == 0 {
		return b, nil // an empty stream
	}
	return b, err
}

// rawHead reads up to n bytes from the start of o, as stored.
func (o *object) rawHead(ctx context.Context, s operators.Services, n int64) ([]byte, error) {
	st, err := o.open(ctx, s)
	if err != nil {
		return nil, err
	}
	rc, err := st.GetRange(ctx, o.key, 0, n)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", o.name, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", o.name, err)
	}
	return b, nil
}

// head reads up to n bytes of o's content (decompressed).
func (o *object) head(ctx context.Context, s operators.Services, n int64) ([]byte, error) {
	if o.codec == "" {
		return o.rawHead(ctx, s, n)
	}
	st, err := o.open(ctx, s)
	if err != nil {
		return nil, err
	}
	rc, err := dataset.OpenObject(ctx, st, o.key, o.codec)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", o.name, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, n))
	var ce *dataset.CorruptError
	if errors.As(err, &ce) && len(b) > 0 {
		err = nil // a header and a sample are all that is wanted here
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", o.name, err)
	}
	return b, nil
}
