package dataset

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/encoding"
)

// ReadRowGroup reads the rows of rg in order, calling add for each and
// onBad for each bad row (a *ParseError whose Line is the row's number in
// the file: firstRow, the rows before rg, plus its 1-based place in rg);
// onBad returns false to stop. It returns the rows consumed and whether
// onBad stopped it.
//
// It reads column by column, pqBatch rows at a time, straight from the
// pages' value buffers and, for dictionary-encoded pages, from the
// dictionary, each entry converted or hashed once per column chunk.
//
// A panic of the Parquet library on malformed data is returned as an error.
func (p *Parquet) ReadRowGroup(ctx context.Context, rg parquet.RowGroup, firstRow int64, row *Row, add func(*Row) error, onBad func(*ParseError) bool) (_ int64, _ bool, err error) {
	defer recoverParquet(&err)
	if p.cols == nil {
		return 0, false, errors.New("parquet: a layout cannot read rows; use NewParquet")
	}
	schema := rg.Schema()
	paths := schema.Columns()
	var curs []*pqCursor
	for ci, ch := range rg.ColumnChunks() {
		if ci >= len(p.cols) || p.cols[ci].kind == csvIgnore {
			continue
		}
		leaf, _ := schema.Lookup(paths[ci]...)
		c := &pqCursor{p: p, col: &p.cols[ci], pages: ch.Pages(), maxDef: byte(leaf.MaxDefinitionLevel)}
		defer c.close()
		curs = append(curs, c)
	}
	total := rg.NumRows()
	if len(p.acc) < pqBatch {
		p.acc = make([]pqRow, pqBatch)
	}
	var done int64
	for done < total {
		if err := ctx.Err(); err != nil {
			return done, false, err
		}
		n := int(min(total-done, pqBatch))
		acc := p.acc[:n]
		for i := range acc {
			acc[i].reset()
		}
		for _, c := range curs {
			if err := c.fill(acc); err != nil {
				return done, false, fmt.Errorf("parquet: column %q, rows %d to %d: %w", c.col.name, firstRow+done+1, firstRow+done+int64(n), err)
			}
		}
		for i := range acc {
			a := &acc[i]
			if a.bad == nil && !a.labelSeen {
				a.bad = &ParseError{Reason: ReasonLabel, Field: p.label, Detail: "no label"}
			}
			if a.bad != nil {
				a.bad.Line = firstRow + done + int64(i) + 1
				if !onBad(a.bad) {
					return done + int64(i) + 1, true, nil
				}
				continue
			}
			p.finish(a, row)
			if err := add(row); err != nil {
				return done + int64(i) + 1, false, err
			}
		}
		done += int64(n)
	}
	return done, false, nil
}

// pqBatch is how many rows ReadRowGroup assembles at a time.
const pqBatch = 1024

// pqRow gathers one row's entries while its columns are read.
type pqRow struct {
	label     float32
	labelSeen bool
	idx       []uint32
	val       []float32
	cat       []uint32
	bad       *ParseError
}

func (a *pqRow) reset() {
	a.labelSeen, a.bad = false, nil
	a.idx, a.val, a.cat = a.idx[:0], a.val[:0], a.cat[:0]
}

// finish writes a gathered row into r: the numeric slots (in order, as the
// columns were read in schema order), then the hashed ones sorted,
// collisions adding up.
func (p *Parquet) finish(a *pqRow, r *Row) {
	r.Label = a.label
	idx, val := append(r.Indices[:0], a.idx...), append(r.Values[:0], a.val...)
	sortUint32(a.cat)
	for k, slot := range a.cat {
		if k > 0 && slot == a.cat[k-1] {
			val[len(val)-1]++
			continue
		}
		idx = append(idx, slot)
		val = append(val, 1)
	}
	r.Indices, r.Values = idx, val
}

// How a cursor reads its page's values.
const (
	modeGeneric = iota // page.Values(), nulls as null Values
	modeDict           // dictionary indexes
	modeInt32
	modeInt64
	modeFloat
	modeDouble
	modeBytes
)

// pqCursor walks one column chunk's pages.
type pqCursor struct {
	p      *Parquet
	col    *pqColumn
	pages  parquet.Pages
	page   parquet.Page
	maxDef byte
	levels []byte // definition levels; nil when they mark no nulls
	li, vi int    // next level, next value
	n      int    // levels (rows) in the page
	mode   int
	i32    []int32
	i64    []int64
	f32    []float32
	f64    []float64
	data   []byte
	offs   []uint32
	values []parquet.Value // modeGeneric
	// The current dictionary's entries, converted once.
	dict     parquet.Dictionary
	dictNum  []float32
	dictSlot []uint32
	dictBad  []*ParseError
}

func (c *pqCursor) close() {
	if c.page != nil {
		parquet.Release(c.page)
		c.page = nil
	}
	c.pages.Close()
}

// next loads the next page.
func (c *pqCursor) next() error {
	if c.page != nil {
		parquet.Release(c.page)
		c.page = nil
	}
	pg, err := c.pages.ReadPage()
	if err == io.EOF {
		return errors.New("the column chunk ends before the row group")
	}
	if err != nil {
		return err
	}
	c.page = pg
	c.li, c.vi = 0, 0
	c.n = int(pg.NumValues())
	c.levels = nil
	if c.maxDef > 0 {
		c.levels = pg.DefinitionLevels()
	}
	c.mode = modeGeneric
	levelsOK := c.maxDef == 0 || len(c.levels) == c.n
	if levelsOK {
		if d := pg.Dictionary(); d != nil {
			c.mode = modeDict
			data := pg.Data()
			c.i32 = data.Int32()
			if d != c.dict {
				c.loadDict(d)
			}
		} else {
			data := pg.Data()
			switch data.Kind() {
			case encoding.Int32:
				c.mode, c.i32 = modeInt32, data.Int32()
			case encoding.Int64:
				c.mode, c.i64 = modeInt64, data.Int64()
			case encoding.Float:
				c.mode, c.f32 = modeFloat, data.Float()
			case encoding.Double:
				c.mode, c.f64 = modeDouble, data.Double()
			case encoding.ByteArray:
				c.mode = modeBytes
				c.data, c.offs = data.ByteArray()
			}
		}
	}
	if c.mode == modeGeneric {
		if cap(c.values) < c.n {
			c.values = make([]parquet.Value, c.n)
		}
		c.values = c.values[:c.n]
		got, err := pg.Values().ReadValues(c.values)
		if err != nil && err != io.EOF {
			return err
		}
		c.values, c.n, c.levels = c.values[:got], got, nil // the values carry their nulls
	}
	return nil
}

// loadDict converts a dictionary's entries once.
func (c *pqCursor) loadDict(d parquet.Dictionary) {
	c.dict = d
	c.dictNum, c.dictSlot, c.dictBad = c.dictNum[:0], c.dictSlot[:0], c.dictBad[:0]
	if c.col.kind == csvCategorical && d.Type().Kind() == parquet.ByteArray {
		// Strings, hashed straight from the dictionary page's buffer.
		values := d.Page().Data()
		data, offs := values.ByteArray()
		if len(offs) == d.Len()+1 {
			base := uint32(len(c.p.numeric))
			for i := 0; i < d.Len(); i++ {
				c.dictSlot = append(c.dictSlot, base+uint32(Hash(c.col.key, data[offs[i]:offs[i+1]])&c.p.mask))
			}
			c.dictNum = append(c.dictNum, make([]float32, d.Len())...)
			c.dictBad = append(c.dictBad, make([]*ParseError, d.Len())...)
			return
		}
	}
	for i := 0; i < d.Len(); i++ {
		x, slot, bad := c.convert(d.Index(int32(i)))
		c.dictNum = append(c.dictNum, x)
		c.dictSlot = append(c.dictSlot, slot)
		c.dictBad = append(c.dictBad, bad)
	}
}

// convert turns one non-null value of the column into its number (label,
// numeric column) or hashed slot (categorical), or the error that makes its
// row bad.
func (c *pqCursor) convert(v parquet.Value) (float32, uint32, *ParseError) {
	p, col := c.p, c.col
	switch col.kind {
	case csvLabel:
		x, ok := number(v)
		if v.Kind() == parquet.ByteArray || v.Kind() == parquet.FixedLenByteArray {
			x, ok = parseNumberLabel(v.ByteArray())
		}
		if !ok || !finite32(x) {
			return 0, 0, p.bad(col, p.valueText(v), ReasonLabel, fmt.Sprintf("label column %q must be a finite number, true or false (or a string holding one); map class names to numbers first", col.name))
		}
		return x, 0, nil
	case csvNumeric:
		x, _ := number(v)
		if !finite32(x) {
			return 0, 0, p.bad(col, p.valueText(v), ReasonNonFinite, fmt.Sprintf("column %q must be finite (and within float32's range)", col.name))
		}
		return x, 0, nil
	}
	return 0, uint32(len(p.numeric)) + uint32(Hash(col.key, p.valueBytes(v))&p.mask), nil
}

// fill adds the column's values to the rows of acc, in order.
func (c *pqCursor) fill(acc []pqRow) error {
	col := c.col
	for r := range acc {
		for c.page == nil || c.li >= c.n {
			if err := c.next(); err != nil {
				return err
			}
		}
		a := &acc[r]
		null := c.levels != nil && c.levels[c.li] != c.maxDef
		c.li++
		if !null && c.mode == modeGeneric && c.values[c.vi].IsNull() {
			null = true
			c.vi++
		}
		if null {
			if col.kind == csvLabel && a.bad == nil {
				a.bad = c.p.bad(col, "null", ReasonLabel, fmt.Sprintf("label column %q is null", col.name))
			}
			continue
		}
		var x float32
		var slot uint32
		var bad *ParseError
		switch c.mode {
		case modeDict:
			k := c.i32[c.vi]
			x, slot, bad = c.dictNum[k], c.dictSlot[k], c.dictBad[k]
		case modeInt32:
			if col.kind == csvNumeric {
				x = float32(c.i32[c.vi])
			} else {
				x, slot, bad = c.convert(parquet.Int32Value(c.i32[c.vi]))
			}
		case modeInt64:
			if col.kind == csvNumeric {
				x = float32(c.i64[c.vi])
			} else {
				x, slot, bad = c.convert(parquet.Int64Value(c.i64[c.vi]))
			}
		case modeFloat:
			x, slot, bad = c.convert(parquet.FloatValue(c.f32[c.vi]))
		case modeDouble:
			x, slot, bad = c.convert(parquet.DoubleValue(c.f64[c.vi]))
		case modeBytes:
			v := c.data[c.offs[c.vi]:c.offs[c.vi+1]]
			if col.kind == csvCategorical {
				slot = uint32(len(c.p.numeric)) + uint32(Hash(col.key, v)&c.p.mask)
			} else {
				x, slot, bad = c.convert(parquet.ByteArrayValue(v))
			}
		default:
			x, slot, bad = c.convert(c.values[c.vi])
		}
		c.vi++
		switch {
		case bad != nil:
			if a.bad == nil {
				b := *bad
				a.bad = &b
			}
		case col.kind == csvLabel:
			a.label, a.labelSeen = x, true
		case col.kind == csvNumeric:
			a.idx = append(a.idx, col.slot)
			a.val = append(a.val, x)
		default:
			a.cat = append(a.cat, slot)
		}
	}
	return nil
}
