package dataset

import (
	"bytes"
	"fmt"
	"strings"
)

// CSVOptions configure the CSV parser.
type CSVOptions struct {
	// Label names the label column (required). Its values are finite
	// numbers: -1/+1 or 0/1 for binary models, classes (0..K-1 or any
	// integers) for softmax, real targets for linear_regression.
	Label string
	// Categorical names the string columns to hash. Every other column
	// (except Label and Ignore) is numeric. InferCSVCategorical finds them
	// from a sample.
	Categorical []string
	// Ignore names columns to leave out (ids, free text).
	Ignore []string
	// HashBits sets the hashed space to 2^HashBits slots; 0 means
	// DefaultHashBits.
	HashBits int
	// Comma is the field separator; 0 means ','.
	Comma byte
	// Columns, when set, names the columns of files without a header line
	// (NewCSV's header is then ignored, and no line is skipped as a header).
	Columns []string
}

type csvKind uint8

const (
	csvNumeric csvKind = iota
	csvCategorical
	csvLabel
	csvIgnore
)

// CSV parses comma-separated lines with a header line. Numeric columns
// take slots 0..k-1 in header order; a value v of categorical column named n
// takes slot k + Hash(NamedColumnKey(n), v) mod 2^HashBits with value 1
// (collisions add up, as for Criteo). Empty fields are missing. Fields may
// be quoted ("a, b" with "" for a quote) but must not span lines; spaces
// around fields are trimmed. A line equal to the header is skipped, so a
// byte range that starts at the top of the file needs no special case.
type CSV struct {
	header  []byte
	names   []string
	kinds   []csvKind
	slots   []uint32 // numeric: its slot
	keys    []uint64 // categorical: its hash key
	numeric int
	mask    uint64
	comma   byte
	// noHeader: the columns were named, not read from a header line, so no
	// line is skipped as the header.
	noHeader bool
	scratch  []byte
	cat      []uint32 // a row's hashed slots, before sorting
}

// NewCSV returns a parser for files whose first line is header (without its
// line terminator).
func NewCSV(header []byte, opts CSVOptions) (*CSV, error) {
	if opts.HashBits == 0 {
		opts.HashBits = DefaultHashBits
	}
	if opts.HashBits < 1 || opts.HashBits > MaxHashBits {
		return nil, fmt.Errorf("csv: hash_bits = %d: must be between 1 and %d", opts.HashBits, MaxHashBits)
	}
	if opts.Comma == 0 {
		opts.Comma = ','
	}
	if opts.Comma == '"' || opts.Comma == '\n' || opts.Comma == '\r' || opts.Comma == ' ' {
		return nil, fmt.Errorf("csv: delimiter %q cannot separate fields (it is a quote, a space or a line end)", opts.Comma)
	}
	var names []string
	if opts.Columns != nil {
		names, header = opts.Columns, nil
	} else {
		header = bytes.TrimSuffix(header, []byte{'\r'})
		var err error
		if names, err = splitCSVHeader(header, opts.Comma); err != nil {
			return nil, err
		}
	}
	c := &CSV{header: append([]byte(nil), header...), names: names, mask: 1<<opts.HashBits - 1, comma: opts.Comma, noHeader: opts.Columns != nil}
	pos := map[string]int{}
	for i, n := range names {
		if n == "" {
			return nil, fmt.Errorf("csv header: column %d has no name", i+1)
		}
		if _, dup := pos[n]; dup {
			return nil, fmt.Errorf("csv header: column name %q appears twice", n)
		}
		pos[n] = i
	}
	find := func(what, name string) (int, error) {
		i, ok := pos[name]
		if !ok && opts.Columns != nil {
			return 0, fmt.Errorf("csv: %s column %q is not a column: without a header line, columns are named by position, 0 to %d (label = 0 for the first)", what, name, len(names)-1)
		}
		if !ok {
			return 0, fmt.Errorf("csv: %s column %q is not in the header (columns: %s)", what, name, strings.Join(names, ", "))
		}
		return i, nil
	}
	c.kinds = make([]csvKind, len(names))
	if opts.Label == "" {
		return nil, fmt.Errorf("csv: no label column given (columns: %s)", strings.Join(names, ", "))
	}
	li, err := find("label", opts.Label)
	if err != nil {
		return nil, err
	}
	c.kinds[li] = csvLabel
	for _, n := range opts.Ignore {
		i, err := find("ignored", n)
		if err != nil {
			return nil, err
		}
		if c.kinds[i] == csvLabel {
			return nil, fmt.Errorf("csv: column %q is the label and cannot be ignored", n)
		}
		c.kinds[i] = csvIgnore
	}
	for _, n := range opts.Categorical {
		i, err := find("categorical", n)
		if err != nil {
			return nil, err
		}
		if c.kinds[i] != csvNumeric {
			return nil, fmt.Errorf("csv: column %q cannot be both categorical and the label or ignored", n)
		}
		c.kinds[i] = csvCategorical
	}
	c.slots = make([]uint32, len(names))
	c.keys = make([]uint64, len(names))
	for i, k := range c.kinds {
		switch k {
		case csvNumeric:
			c.slots[i] = uint32(c.numeric)
			c.numeric++
		case csvCategorical:
			c.keys[i] = NamedColumnKey(names[i])
		}
	}
	return c, nil
}

// Name returns "csv".
func (*CSV) Name() string { return "csv" }

// Features returns the number of numeric columns plus 2^HashBits.
func (c *CSV) Features() int { return c.numeric + int(c.mask) + 1 }

// PositionColumns returns the names of n columns of a file without a header
// line: their positions, "0" to n-1.
func PositionColumns(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprint(i)
	}
	return out
}

// CountCSVFields returns the number of fields of a CSV line.
func CountCSVFields(line []byte, comma byte) (int, error) {
	names, err := splitCSVHeader(bytes.TrimSuffix(line, []byte{'\r'}), comma)
	return len(names), err
}

// Columns returns the header's column names.
func (c *CSV) Columns() []string { return c.names }

// NumericColumns returns the numeric columns' names; the i-th has slot i.
func (c *CSV) NumericColumns() []string {
	var out []string
	for i, k := range c.kinds {
		if k == csvNumeric {
			out = append(out, c.names[i])
		}
	}
	return out
}

// csvField finds the field starting at i. It returns the value's bounds
// (inside quotes, if quoted), whether it holds doubled quotes to undo, and
// where the next field starts (len(line)+1 after the last field).
func csvField(line []byte, i int, comma byte) (start, end, next int, escaped bool, err *ParseError) {
	n := len(line)
	for i < n && line[i] == ' ' {
		i++
	}
	if i < n && line[i] == '"' {
		k := i + 1
		for {
			q := bytes.IndexByte(line[k:], '"')
			if q < 0 {
				return 0, 0, 0, false, perr(line, i, n, ReasonQuote, "quoted field is not closed on this line (fields spanning lines are not supported)")
			}
			k += q
			if k+1 < n && line[k+1] == '"' {
				escaped = true
				k += 2
				continue
			}
			break
		}
		start, end = i+1, k
		k++
		for k < n && line[k] == ' ' {
			k++
		}
		if k < n && line[k] != comma {
			return 0, 0, 0, false, perr(line, i, k+1, ReasonQuote, "unexpected text after a closing quote")
		}
		return start, end, k + 1, escaped, nil
	}
	k := bytes.IndexByte(line[i:], comma)
	if k < 0 {
		k = n
	} else {
		k += i
	}
	end = k
	for end > i && line[end-1] == ' ' {
		end--
	}
	return i, end, k + 1, false, nil
}

func splitCSVHeader(header []byte, comma byte) ([]string, error) {
	var names []string
	for i := 0; i <= len(header); {
		s, e, next, esc, perr := csvField(header, i, comma)
		if perr != nil {
			return nil, fmt.Errorf("csv header: %s", perr.Detail)
		}
		v := string(header[s:e])
		if esc {
			v = strings.ReplaceAll(v, `""`, `"`)
		}
		names = append(names, strings.TrimSpace(v))
		i = next
	}
	return names, nil
}

// ParseLine implements Format.
func (c *CSV) ParseLine(line []byte, row *Row) (bool, error) {
	if len(bytes.TrimSpace(line)) == 0 || !c.noHeader && bytes.Equal(line, c.header) {
		return false, nil
	}
	idx, val := row.Indices[:0], row.Values[:0]
	col := 0
	labelSeen := false
	c.cat = c.cat[:0]
	for i := 0; i <= len(line); col++ {
		s, e, next, esc, perr0 := csvField(line, i, c.comma)
		if perr0 != nil {
			return false, perr0
		}
		if col >= len(c.names) {
			return false, perr(line, i, len(line), ReasonColumns, fmt.Sprintf("more columns than the header's %d", len(c.names)))
		}
		field := line[s:e]
		if esc {
			c.scratch = append(c.scratch[:0], field...)
			c.scratch = bytes.ReplaceAll(c.scratch, []byte(`""`), []byte(`"`))
			field = c.scratch
		}
		switch c.kinds[col] {
		case csvLabel:
			label, ok := parseNumberLabel(bytes.TrimSpace(field))
			if !ok {
				return false, perr(line, s, e, ReasonLabel, fmt.Sprintf("label column %q must be a finite number (classes as numbers, such as 0..K-1, or a real target); map class names to numbers first", c.names[col]))
			}
			row.Label = label
			labelSeen = true
		case csvNumeric:
			if len(field) == 0 {
				break
			}
			x, ok := parseFloat32(field)
			if !ok {
				return false, perr(line, s, e, ReasonValue, fmt.Sprintf("column %q is numeric (list it as categorical to hash its values)", c.names[col]))
			}
			if !finite32(x) {
				return false, perr(line, s, e, ReasonNonFinite, fmt.Sprintf("column %q must be finite", c.names[col]))
			}
			idx = append(idx, c.slots[col])
			val = append(val, x)
		case csvCategorical:
			if len(field) == 0 {
				break
			}
			c.cat = append(c.cat, uint32(c.numeric)+uint32(Hash(c.keys[col], field)&c.mask))
		}
		i = next
	}
	if col != len(c.names) {
		return false, perr(line, 0, len(line), ReasonColumns, fmt.Sprintf("found %d columns, the header has %d", col, len(c.names)))
	}
	if !labelSeen {
		return false, perr(line, 0, len(line), ReasonLabel, "no label")
	}
	// Numeric slots come in order and before the hashed ones: append those
	// sorted, collisions adding up.
	sortUint32(c.cat)
	for k, slot := range c.cat {
		if k > 0 && slot == c.cat[k-1] {
			val[len(val)-1]++
			continue
		}
		idx = append(idx, slot)
		val = append(val, 1)
	}
	row.Indices, row.Values = idx, val
	return true, nil
}

// InferCSVCategorical reads sample — the start of a CSV file, header first —
// and returns the columns (other than label) holding a non-empty value that
// is not a number: the columns to hash. Lines that do not parse are ignored.
func InferCSVCategorical(sample []byte, label string, comma byte) ([]string, error) {
	if comma == 0 {
		comma = ','
	}
	nl := bytes.IndexByte(sample, '\n')
	if nl < 0 {
		nl = len(sample)
	}
	names, err := splitCSVHeader(bytes.TrimSuffix(sample[:nl], []byte{'\r'}), comma)
	if err != nil {
		return nil, err
	}
	str := make([]bool, len(names))
	rest := sample[min(nl+1, len(sample)):]
	for len(rest) > 0 {
		nl := bytes.IndexByte(rest, '\n')
		if nl < 0 {
			break // a partial last line
		}
		line := bytes.TrimSuffix(rest[:nl], []byte{'\r'})
		rest = rest[nl+1:]
		var fields [][2]int
		ok := true
		for i := 0; i <= len(line); {
			s, e, next, _, perr := csvField(line, i, comma)
			if perr != nil {
				ok = false
				break
			}
			fields = append(fields, [2]int{s, e})
			i = next
		}
		if !ok || len(fields) != len(names) {
			continue
		}
		for k, f := range fields {
			if f[1] > f[0] {
				if _, isNum := parseFloat32(line[f[0]:f[1]]); !isNum {
					str[k] = true
				}
			}
		}
	}
	var out []string
	for k, n := range names {
		if str[k] && n != label {
			out = append(out, n)
		}
	}
	return out, nil
}
