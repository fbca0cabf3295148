// Package dataset parses the input formats Stratus loads — LIBSVM/svmlight,
// Criteo TSV, CSV and JSON lines, line by line from line-aligned byte ranges
// of an object, and Parquet by row group — into sparse rows; and finds and
// undoes compression (gzip, zstd, bzip2) by content (compress.go).
//
// A Format parses one line into a Row; a Scanner splits a stream into lines,
// counts them, keeps to a byte range and turns format errors into ParseErrors
// that name the object, line, column and offending text. Formats and
// Scanners reuse their buffers and are not safe for concurrent use: give each
// goroutine its own.
//
// Feature slots are 0-based uint32s:
//   - LIBSVM index i (1-based in the file) is slot i-1;
//   - Criteo integer column j (0..12) is slot j, and categorical column c
//     (0..25) with value v is slot 13 + Hash(c, v) mod 2^hash_bits;
//   - CSV numeric columns take slots 0..k-1 in header order, and a string
//     column named n with value v takes slot k + Hash(n, v) mod 2^hash_bits;
//     JSON lines and Parquet columns alike (so the same rows give the same
//     Rows in all three);
//   - hashed LIBSVM index i takes slot Fmix64(i XOR LIBSVMHashKey) mod
//     2^hash_bits.
//
// A Row holds every value present in the input, explicit zeros included.
// An absent slot means zero (LIBSVM) or missing (an empty Criteo or CSV
// field).
package dataset

import (
	"fmt"
	"strings"
)

// Row is one parsed example. Parsers overwrite it in place, reusing the
// slices' capacity, so a caller that keeps a row must copy it.
type Row struct {
	Label   float32   // as the input spells it (LIBSVM -1 stays -1); Criteo's 0 or 1
	Indices []uint32  // feature slots, strictly increasing
	Values  []float32 // Values[k] belongs to Indices[k]; finite
}

// Clone returns a deep copy of the row.
func (r *Row) Clone() Row {
	return Row{
		Label:   r.Label,
		Indices: append([]uint32(nil), r.Indices...),
		Values:  append([]float32(nil), r.Values...),
	}
}

// Reasons a line is rejected. They are short and stable so that
// on_error = "skip" can count skipped lines per reason.
const (
	ReasonLabel       = "invalid label"
	ReasonIndex       = "invalid feature index"
	ReasonDuplicate   = "duplicate feature index"
	ReasonSyntax      = "malformed feature"
	ReasonValue       = "invalid value"
	ReasonNonFinite   = "NaN or Inf value"
	ReasonColumns     = "wrong number of columns"
	ReasonQuote       = "unterminated quote"
	ReasonLineTooLong = "line too long"
)

// maxText is how much offending text a ParseError keeps.
const maxText = 60

// ParseError describes one bad line. Formats set Column, Text, Reason and
// Detail; the Scanner adds Object, Line and Offset.
type ParseError struct {
	Object string // the object's URI or file name
	Line   int64  // 1-based line number (counted from ScanOptions.FirstLine)
	Offset int64  // byte offset of the line's first byte in the object
	Column int    // 1-based byte column of Text in the line
	Text   string // the offending text, cut to about 60 bytes (raw bytes; Error quotes it)
	Reason string // one of the Reason* constants
	Detail string // what is expected, in a few words
	// Field is the column of a bad row of a columnar format (Parquet),
	// whose Line is then the row's number in the file.
	Field string
}

func (e *ParseError) Error() string {
	var b strings.Builder
	if e.Field != "" {
		if e.Object != "" {
			b.WriteString(e.Object + ": ")
		}
		fmt.Fprintf(&b, "row %d, column %q: %s", e.Line, e.Field, e.Reason)
		if e.Text != "" {
			fmt.Fprintf(&b, " %q", e.Text)
		}
		if e.Detail != "" {
			b.WriteString(": " + e.Detail)
		}
		return b.String()
	}
	if e.Object != "" {
		b.WriteString(e.Object)
		b.WriteByte(':')
	}
	if e.Line > 0 {
		fmt.Fprintf(&b, "%d:", e.Line)
	} else {
		fmt.Fprintf(&b, "byte %d:", e.Offset)
	}
	if e.Column > 0 {
		fmt.Fprintf(&b, "%d:", e.Column)
	}
	fmt.Fprintf(&b, " %s %q", e.Reason, e.Text)
	if e.Detail != "" {
		b.WriteString(": ")
		b.WriteString(e.Detail)
	}
	return b.String()
}

// snippet copies at most maxText bytes of b (marking a cut with "...").
func snippet(b []byte) string {
	if len(b) <= maxText {
		return string(b)
	}
	return string(b[:maxText]) + "..."
}

func perr(line []byte, start, end int, reason, detail string) *ParseError {
	if end > len(line) {
		end = len(line)
	}
	if start > end {
		start = end
	}
	return &ParseError{Column: start + 1, Text: snippet(line[start:end]), Reason: reason, Detail: detail}
}
