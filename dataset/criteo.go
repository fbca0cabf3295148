package dataset

import (
	"bytes"
	"fmt"
	"math"
	"slices"
)

// Criteo column layout: label, 13 integer columns, 26 categorical columns.
const (
	CriteoIntColumns = 13
	CriteoCatColumns = 26
	CriteoColumns    = 1 + CriteoIntColumns + CriteoCatColumns
)

// CriteoOptions configure the Criteo parser.
type CriteoOptions struct {
	// HashBits sets the hashed space to 2^HashBits slots (1..MaxHashBits);
	// 0 means DefaultHashBits.
	HashBits int
	// Log1p replaces an integer value x by log(1 + max(x, 0)). Criteo's
	// integer columns are heavy-tailed counts, some with small negative
	// values (such as -1 or -2 in the second column); clamping negatives to
	// zero before log1p follows the usual preprocessing (as in DLRM).
	Log1p bool
}

// Criteo parses the Criteo Display Advertising Challenge TSV layout: 40
// tab-separated fields — a 0/1 label (±1 accepted; -1 becomes 0), 13
// integer columns and 26 categorical columns (hex strings in the original
// data; any bytes are accepted and hashed). An empty field is missing and
// gives no entry.
//
// Integer column j (0..12) is slot j with its value (optionally log1p). A
// categorical value v in column c (0..25) is slot 13 + Hash(ColumnKey(c), v)
// mod 2^HashBits with value 1; when two columns of a row hash to the same
// slot, their values add up (so the slot holds 2). Non-integer numbers are
// accepted in the integer columns.
type Criteo struct {
	opts CriteoOptions
	mask uint64
	keys [CriteoCatColumns]uint64
}

// NewCriteo returns a Criteo parser.
func NewCriteo(opts CriteoOptions) (*Criteo, error) {
	if opts.HashBits == 0 {
		opts.HashBits = DefaultHashBits
	}
	if opts.HashBits < 1 || opts.HashBits > MaxHashBits {
		return nil, fmt.Errorf("criteo: hash_bits = %d: must be between 1 and %d", opts.HashBits, MaxHashBits)
	}
	c := &Criteo{opts: opts, mask: 1<<opts.HashBits - 1}
	for i := range c.keys {
		c.keys[i] = ColumnKey(i)
	}
	return c, nil
}

// Name returns "criteo".
func (*Criteo) Name() string { return "criteo" }

// Features returns 13 + 2^HashBits.
func (c *Criteo) Features() int { return CriteoIntColumns + int(c.mask) + 1 }

// Slot returns the slot of value in categorical column col (0..25).
func (c *Criteo) Slot(col int, value []byte) uint32 {
	return CriteoIntColumns + uint32(Hash(c.keys[col], value)&c.mask)
}

// ParseLine implements Format.
func (c *Criteo) ParseLine(line []byte, row *Row) (bool, error) {
	if len(line) == 0 {
		return false, nil
	}
	if tabs := bytes.Count(line, []byte{'\t'}); tabs != CriteoColumns-1 {
		return false, c.columnError(line, tabs+1)
	}
	idx, val := row.Indices[:0], row.Values[:0]
	start := 0
	numCat := 0
	for f := 0; f < CriteoColumns; f++ {
		end := len(line)
		if f < CriteoColumns-1 {
			end = start + bytes.IndexByte(line[start:], '\t')
		}
		field := line[start:end]
		switch {
		case f == 0:
			label, ok := parseLabel(field)
			if !ok {
				return false, perr(line, start, end, ReasonLabel, "the first column is the label: 0 or 1")
			}
			row.Label = label
		case len(field) == 0:
			// missing
		case f <= CriteoIntColumns:
			x, ok := parseFloat32(field)
			if !ok {
				return false, perr(line, start, end, ReasonValue, fmt.Sprintf("column %d is integer column I%d: expected a number or an empty field", f+1, f))
			}
			if !finite32(x) {
				return false, perr(line, start, end, ReasonNonFinite, fmt.Sprintf("column %d (I%d) must be finite", f+1, f))
			}
			if c.opts.Log1p {
				x = log1pClamped(x)
			}
			idx = append(idx, uint32(f-1))
			val = append(val, x)
		default:
			idx = append(idx, c.Slot(f-1-CriteoIntColumns, field))
			numCat++
		}
		start = end + 1
	}
	// The categorical slots follow the integer ones: sort them and give
	// each distinct slot the number of columns that hit it.
	cat := len(idx) - numCat
	sortUint32(idx[cat:])
	w := cat
	for k := cat; k < len(idx); k++ {
		if w > cat && idx[w-1] == idx[k] {
			val[w-1]++
			continue
		}
		idx[w] = idx[k]
		val = append(val, 1)
		w++
	}
	row.Indices, row.Values = idx[:w], val
	return true, nil
}

// log1pTable[i] = log1p(i) for small integers, the common Criteo values.
var log1pTable = func() (t [4096]float32) {
	for i := range t {
		t[i] = float32(math.Log1p(float64(i)))
	}
	return t
}()

// log1pClamped returns log(1 + max(x, 0)) rounded to float32.
func log1pClamped(x float32) float32 {
	if x <= 0 {
		return 0
	}
	if x < float32(len(log1pTable)) && x == float32(int(x)) {
		return log1pTable[int(x)]
	}
	return float32(math.Log1p(float64(x)))
}

// sortUint32 sorts a short slice (a row's hashed slots) in place.
func sortUint32(s []uint32) {
	if len(s) > 48 {
		slices.Sort(s)
		return
	}
	for i := 1; i < len(s); i++ {
		v := s[i]
		j := i - 1
		for j >= 0 && s[j] > v {
			s[j+1] = s[j]
			j--
		}
		s[j+1] = v
	}
}

func (c *Criteo) columnError(line []byte, cols int) error {
	detail := fmt.Sprintf("found %d tab-separated columns, want %d (label, %d integer, %d categorical; empty fields for missing values)",
		cols, CriteoColumns, CriteoIntColumns, CriteoCatColumns)
	if cols > CriteoColumns {
		// Point at the first extra column.
		start := 0
		for f := 0; f < CriteoColumns; f++ {
			start += bytes.IndexByte(line[start:], '\t') + 1
		}
		return perr(line, start, len(line), ReasonColumns, detail)
	}
	return perr(line, 0, len(line), ReasonColumns, detail)
}
