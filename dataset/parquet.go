package dataset

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"sync"

	"github.com/parquet-go/parquet-go"

	"github.com/stratus-ml/stratus/blob"
)

// ParquetOptions configure the Parquet reader. They name top-level columns.
type ParquetOptions struct {
	// Label names the label column (required): finite numbers or booleans
	// (true is 1, false 0), or strings holding numbers.
	Label string
	// Categorical names the columns whose values are hashed; when
	// CategoricalSet is false, the string (byte array) columns are.
	Categorical    []string
	CategoricalSet bool
	// Ignore names columns to leave out (nested and repeated columns must
	// be ignored).
	Ignore []string
	// HashBits sets the hashed space to 2^HashBits slots; 0 means
	// DefaultHashBits.
	HashBits int
}

type pqColumn struct {
	name   string
	kind   csvKind
	slot   uint32 // numeric
	key    uint64 // categorical
	maxDef int    // the leaf's definition levels
}

// Parquet turns the rows of Parquet files into Rows, as CSV does its lines:
// numeric columns (booleans, integers, floats) take slots 0..k-1 in schema
// order with their values; a value v of categorical column n takes slot k +
// Hash(NamedColumnKey(n), v) mod 2^HashBits with value 1, v being a string's
// bytes or a number's decimal text (as a CSV file would hold it); nulls are
// missing. A Parquet and a CSV file of the same rows give the same Rows.
//
// It implements Format for its Name and Features only: Parquet is not
// line-oriented, and ParseLine fails. Read rows with ReadRowGroup.
type Parquet struct {
	cols        []pqColumn // by leaf column index
	names       []string   // top-level columns, in schema order
	numeric     []string
	categorical []string
	label       string
	mask        uint64
	text        []byte
	acc         []pqRow
}

// NewParquet returns a reader of files with schema s.
func NewParquet(s *parquet.Schema, opts ParquetOptions) (*Parquet, error) {
	if opts.HashBits == 0 {
		opts.HashBits = DefaultHashBits
	}
	if opts.HashBits < 1 || opts.HashBits > MaxHashBits {
		return nil, fmt.Errorf("parquet: hash_bits = %d: must be between 1 and %d", opts.HashBits, MaxHashBits)
	}
	if opts.Label == "" {
		return nil, errors.New("parquet: no label column given")
	}
	p := &Parquet{label: opts.Label, mask: 1<<opts.HashBits - 1}
	ignore := setOf(opts.Ignore)
	categorical := setOf(opts.Categorical)
	top := map[string]bool{}
	paths := s.Columns()
	p.cols = make([]pqColumn, len(paths))
	labelSeen := false
	for i, path := range paths {
		name := path[0]
		if !top[name] {
			top[name] = true
			p.names = append(p.names, name)
		}
		leaf, _ := s.Lookup(path...)
		c := pqColumn{name: name, maxDef: leaf.MaxDefinitionLevel}
		switch {
		case ignore[name]:
			if name == opts.Label {
				return nil, fmt.Errorf("parquet: column %q is the label and cannot be ignored", name)
			}
			c.kind = csvIgnore
		case len(path) > 1 || leaf.MaxRepetitionLevel > 0:
			return nil, fmt.Errorf("parquet: column %q is nested or repeated, which load cannot turn into features; list it in ignore", name)
		case name == opts.Label:
			c.kind = csvLabel
			labelSeen = true
		default:
			k := leaf.Node.Type().Kind()
			str := k == parquet.ByteArray || k == parquet.FixedLenByteArray
			if k == parquet.Int96 {
				return nil, fmt.Errorf("parquet: column %q is INT96 (a legacy timestamp), which load cannot turn into a feature; list it in ignore", name)
			}
			switch {
			case categorical[name] || !opts.CategoricalSet && str:
				c.kind, c.key = csvCategorical, NamedColumnKey(name)
				p.categorical = append(p.categorical, name)
			case str:
				return nil, fmt.Errorf("parquet: column %q holds strings; list it in categorical to hash them, or in ignore", name)
			default:
				c.kind, c.slot = csvNumeric, uint32(len(p.numeric))
				p.numeric = append(p.numeric, name)
			}
		}
		p.cols[i] = c
	}
	if !labelSeen {
		return nil, fmt.Errorf("parquet: label column %q is not in the file (columns: %s)", opts.Label, strings.Join(p.names, ", "))
	}
	for _, lists := range [][]string{opts.Ignore, opts.Categorical} {
		for _, n := range lists {
			if !top[n] {
				return nil, fmt.Errorf("parquet: column %q is not in the file (columns: %s)", n, strings.Join(p.names, ", "))
			}
		}
	}
	return p, nil
}

func setOf(xs []string) map[string]bool {
	m := make(map[string]bool, len(xs))
	for _, x := range xs {
		m[x] = true
	}
	return m
}

// Name returns "parquet".
func (*Parquet) Name() string { return "parquet" }

// Features returns the number of numeric columns plus 2^HashBits.
func (p *Parquet) Features() int { return len(p.numeric) + int(p.mask) + 1 }

// ParseLine fails: Parquet is read by row group (ReadRowGroup).
func (p *Parquet) ParseLine([]byte, *Row) (bool, error) {
	return false, errors.New("parquet is read by row group, not line by line: data for a model trained on Parquet cannot be read as text yet")
}

// Columns returns the top-level columns in schema order.
func (p *Parquet) Columns() []string { return p.names }

// NumericColumns returns the numeric columns; the i-th has slot i.
func (p *Parquet) NumericColumns() []string { return p.numeric }

// CategoricalColumns returns the hashed columns.
func (p *Parquet) CategoricalColumns() []string { return p.categorical }

func (p *Parquet) bad(c *pqColumn, text, reason, detail string) *ParseError {
	return &ParseError{Field: c.name, Text: snippet([]byte(text)), Reason: reason, Detail: detail}
}

// number returns a numeric value as float32 (booleans as 0 and 1).
func number(v parquet.Value) (float32, bool) {
	switch v.Kind() {
	case parquet.Boolean:
		if v.Boolean() {
			return 1, true
		}
		return 0, true
	case parquet.Int32:
		return float32(v.Int32()), true
	case parquet.Int64:
		return float32(v.Int64()), true
	case parquet.Float:
		return v.Float(), true
	case parquet.Double:
		d := v.Double()
		if math.Abs(d) > math.MaxFloat32 {
			return float32(math.Inf(1)), true
		}
		return float32(d), true
	}
	return 0, false
}

// valueBytes is what a categorical value hashes: a string's bytes, or a
// number's text as CSV would hold it.
func (p *Parquet) valueBytes(v parquet.Value) []byte {
	switch v.Kind() {
	case parquet.ByteArray, parquet.FixedLenByteArray:
		return v.ByteArray()
	case parquet.Boolean:
		if v.Boolean() {
			return append(p.text[:0], '1')
		}
		return append(p.text[:0], '0')
	case parquet.Int32:
		p.text = strconv.AppendInt(p.text[:0], int64(v.Int32()), 10)
	case parquet.Int64:
		p.text = strconv.AppendInt(p.text[:0], v.Int64(), 10)
	case parquet.Float:
		p.text = strconv.AppendFloat(p.text[:0], float64(v.Float()), 'g', -1, 32)
	case parquet.Double:
		p.text = strconv.AppendFloat(p.text[:0], v.Double(), 'g', -1, 64)
	default:
		p.text = append(p.text[:0], v.String()...)
	}
	return p.text
}

func (p *Parquet) valueText(v parquet.Value) string { return string(p.valueBytes(v)) }

// ParquetFile is a Parquet file opened from a blob store.
type ParquetFile struct {
	*parquet.File
	r *readerAt
}

// StoreError returns the first error the store gave a read of the file, if
// any: an error reading rows without one is the file's (corrupt data).
func (f *ParquetFile) StoreError() error {
	f.r.mu.Lock()
	defer f.r.mu.Unlock()
	return f.r.err
}

// OpenParquet opens the Parquet file at key of st, of size bytes: its footer
// is read now, column chunks as row groups are read, with ranged reads of
// at least 1 MiB.
func OpenParquet(ctx context.Context, st blob.Store, key string, size int64) (_ *ParquetFile, err error) {
	defer recoverParquet(&err)
	r := &readerAt{ctx: ctx, st: st, key: key}
	if r.tail, r.tailOff, err = readFooter(r, size); err != nil {
		if errors.Is(err, ErrParquetBounds) {
			return nil, fmt.Errorf("parquet: %w", err)
		}
		return nil, err
	}
	f, err := parquet.OpenFile(r, size, parquet.SkipPageIndex(true), parquet.SkipBloomFilters(true), parquet.ReadBufferSize(1<<20))
	if err != nil {
		return nil, fmt.Errorf("parquet: %w", err)
	}
	if err := checkParquetFooter(f.Metadata(), size); err != nil {
		return nil, fmt.Errorf("parquet: %w", err)
	}
	return &ParquetFile{File: f, r: r}, nil
}

// CheckRowGroup checks the page headers of the columns of row group gi
// that p reads (see checkRowGroup) before p.ReadRowGroup reads them, so
// that a corrupt header fails with an error rather than an allocation of
// what it claims. An error matching ErrParquetBounds is the file's; any
// other is the store's.
func (f *ParquetFile) CheckRowGroup(p *Parquet, gi int) error {
	return CheckRowGroup(f.r, f.File, p, gi)
}

// CheckRowGroup is ParquetFile.CheckRowGroup for a file read from r.
func CheckRowGroup(r io.ReaderAt, f *parquet.File, p *Parquet, gi int) error {
	if err := checkRowGroup(r, f.Metadata(), gi, p.reads); err != nil {
		return fmt.Errorf("parquet: %w", err)
	}
	return nil
}

// reads reports whether p decodes leaf column ci, and its definition
// levels.
func (p *Parquet) reads(ci int) (int, bool) {
	if ci >= len(p.cols) || p.cols[ci].kind == csvIgnore {
		return 0, false
	}
	return p.cols[ci].maxDef, true
}

// readerAt reads an object by ranged GETs, remembering the store's first
// error.
type readerAt struct {
	ctx context.Context
	st  blob.Store
	key string
	mu  sync.Mutex
	err error
	// tail is the end of the object, from tailOff, read first (readFooter)
	// and served from memory to the Parquet library's reads of the footer.
	tail    []byte
	tailOff int64
}

func (r *readerAt) fail(err error) error {
	if err != nil && err != io.EOF {
		r.mu.Lock()
		if r.err == nil {
			r.err = err
		}
		r.mu.Unlock()
	}
	return err
}

func (r *readerAt) ReadAt(p []byte, off int64) (int, error) {
	if r.tail != nil && off >= r.tailOff && off+int64(len(p)) <= r.tailOff+int64(len(r.tail)) {
		return copy(p, r.tail[off-r.tailOff:]), nil
	}
	rc, err := r.st.GetRange(r.ctx, r.key, off, int64(len(p)))
	if err != nil {
		return 0, r.fail(err)
	}
	defer rc.Close()
	n, err := io.ReadFull(rc, p)
	if err == io.ErrUnexpectedEOF {
		err = io.EOF
	}
	return n, r.fail(err)
}

// ParquetLayout returns a Parquet format that names its columns but reads
// nothing: what a manifest's format needs (Name, Features). Read files with
// NewParquet.
func ParquetLayout(numeric, categorical []string, hashBits int) *Parquet {
	if hashBits == 0 {
		hashBits = DefaultHashBits
	}
	return &Parquet{numeric: numeric, categorical: categorical, mask: 1<<hashBits - 1}
}

// RowGroupSizes returns the stored (compressed) size of each of f's row
// groups, for sizing tasks.
func RowGroupSizes(f *parquet.File) []int64 {
	var out []int64
	for _, rg := range f.Metadata().RowGroups {
		n := rg.TotalCompressedSize
		if n <= 0 {
			n = rg.TotalByteSize
		}
		out = append(out, max(n, 1))
	}
	return out
}

// ReadParquetBytes reads a whole Parquet file held in memory, calling fn for
// each good row, and returns the rows read and the first error (a bad row's
// *ParseError included). It is the reader load's tasks use, over bytes.
func ReadParquetBytes(data []byte, opts ParquetOptions, fn func(*Row)) (n int64, err error) {
	defer recoverParquet(&err)
	if _, _, err := readFooter(bytes.NewReader(data), int64(len(data))); err != nil {
		return 0, fmt.Errorf("parquet: %w", err)
	}
	f, err := parquet.OpenFile(bytes.NewReader(data), int64(len(data)), parquet.SkipPageIndex(true), parquet.SkipBloomFilters(true))
	if err != nil {
		return 0, fmt.Errorf("parquet: %w", err)
	}
	if err := checkParquetFooter(f.Metadata(), int64(len(data))); err != nil {
		return 0, fmt.Errorf("parquet: %w", err)
	}
	p, err := NewParquet(f.Schema(), opts)
	if err != nil {
		return 0, err
	}
	var row Row
	var first error
	for gi, rg := range f.RowGroups() {
		if err := checkRowGroup(bytes.NewReader(data), f.Metadata(), gi, p.reads); err != nil {
			return n, fmt.Errorf("parquet: %w", err)
		}
		got, stopped, err := p.ReadRowGroup(context.Background(), rg, n, &row, func(r *Row) error { fn(r); return nil },
			func(pe *ParseError) bool { first = pe; return false })
		n += got
		if err != nil {
			return n, err
		}
		if stopped {
			return n, first
		}
	}
	return n, nil
}

// ParquetFooter opens a Parquet file held in memory, maps its schema as
// NewParquet does and checks its footer and the page headers of the columns
// NewParquet reads (the bounds of parquet_bounds.go), without reading rows;
// it returns the row groups' sizes.
func ParquetFooter(data []byte, opts ParquetOptions) (sizes []int64, err error) {
	defer recoverParquet(&err)
	if _, _, err := readFooter(bytes.NewReader(data), int64(len(data))); err != nil {
		return nil, fmt.Errorf("parquet: %w", err)
	}
	f, err := parquet.OpenFile(bytes.NewReader(data), int64(len(data)), parquet.SkipPageIndex(true), parquet.SkipBloomFilters(true))
	if err != nil {
		return nil, fmt.Errorf("parquet: %w", err)
	}
	if err := checkParquetFooter(f.Metadata(), int64(len(data))); err != nil {
		return nil, fmt.Errorf("parquet: %w", err)
	}
	p, err := NewParquet(f.Schema(), opts)
	if err != nil {
		return nil, err
	}
	for gi := range f.Metadata().RowGroups {
		if err := checkRowGroup(bytes.NewReader(data), f.Metadata(), gi, p.reads); err != nil {
			return nil, fmt.Errorf("parquet: %w", err)
		}
	}
	return RowGroupSizes(f), nil
}

// recoverParquet turns a panic of the Parquet library on malformed data
// into an error: a corrupt file must fail its load, not crash the process.
func recoverParquet(err *error) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("parquet: the file is corrupt (the reader failed: %v)", r)
	}
}
