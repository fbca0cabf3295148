package canon

import (
	"fmt"
	"math/big"
	"sort"
	"strconv"
	"strings"

	"github.com/zclconf/go-cty/cty"
)

// Encode encodes a value so that equal configurations encode equally however they
// were written: numbers by value (0.1 and 0.10 agree; see numberText), lists, tuples and sets
// alike as sequences (sets sorted), objects and maps alike as key-sorted pairs, every
// string length-prefixed so no two structures can share an encoding. Unknown values —
// what a stage reads from upstream stages at plan time — encode as "?", since the
// upstream keys already stand for them.
func Encode(v cty.Value) string {
	var b strings.Builder
	canon(&b, v)
	return b.String()
}

func canon(b *strings.Builder, v cty.Value) {
	if !v.IsKnown() {
		b.WriteByte('?')
		return
	}
	if v.IsNull() {
		b.WriteByte('z')
		return
	}
	v, _ = v.Unmark()
	t := v.Type()
	switch {
	case t == cty.String:
		s := v.AsString()
		b.WriteByte('s')
		b.WriteString(strconv.Itoa(len(s)))
		b.WriteByte(':')
		b.WriteString(s)
	case t == cty.Number:
		b.WriteByte('n')
		b.WriteString(numberText(v.AsBigFloat()))
		b.WriteByte(';')
	case t == cty.Bool:
		if v.True() {
			b.WriteString("b1")
		} else {
			b.WriteString("b0")
		}
	case t.IsListType() || t.IsTupleType():
		b.WriteByte('l')
		b.WriteString(strconv.Itoa(v.LengthInt()))
		b.WriteByte(':')
		for it := v.ElementIterator(); it.Next(); {
			_, e := it.Element()
			canon(b, e)
		}
	case t.IsSetType():
		var elems []string
		for it := v.ElementIterator(); it.Next(); {
			_, e := it.Element()
			elems = append(elems, Encode(e))
		}
		sort.Strings(elems)
		b.WriteByte('l')
		b.WriteString(strconv.Itoa(len(elems)))
		b.WriteByte(':')
		for _, e := range elems {
			b.WriteString(e)
		}
	case t.IsMapType() || t.IsObjectType():
		type kv struct {
			k string
			v cty.Value
		}
		var kvs []kv
		for it := v.ElementIterator(); it.Next(); {
			k, e := it.Element()
			kvs = append(kvs, kv{k.AsString(), e})
		}
		sort.Slice(kvs, func(i, j int) bool { return kvs[i].k < kvs[j].k })
		b.WriteByte('m')
		b.WriteString(strconv.Itoa(len(kvs)))
		b.WriteByte(':')
		for _, e := range kvs {
			canon(b, cty.StringVal(e.k))
			canon(b, e.v)
		}
	default:
		// Capsules and other exotic types do not occur in configurations.
		fmt.Fprintf(b, "x%d:%s", len(t.FriendlyName()), t.FriendlyName())
	}
}

// numberText renders a number without trailing zeros: integers exactly, other
// numbers as the shortest text of their nearest float64. Operators compute in
// float64, so numbers that agree as float64 configure the same work; and cty holds
// a literal 0.1 at 512-bit precision but a schema default NumberFloatVal(0.1) as the
// float64 nearest 0.1 — exact text would give those two different keys.
func numberText(f *big.Float) string {
	if f.IsInt() {
		i, _ := f.Int(nil)
		return i.String()
	}
	if f.IsInf() {
		return f.Text('g', -1)
	}
	f64, _ := f.Float64()
	return strconv.FormatFloat(f64, 'g', -1, 64)
}

// HasUnknown reports whether an Encode encoding holds an unknown value. It
// walks the encoding's tokens, so a "?" inside a string does not count.
func HasUnknown(c string) bool {
	for i := 0; i < len(c); {
		switch c[i] {
		case '?':
			return true
		case 's', 'x':
			j := strings.IndexByte(c[i:], ':')
			if j < 0 {
				return false
			}
			n, err := strconv.Atoi(c[i+1 : i+j])
			if err != nil {
				return false
			}
			i += j + 1 + n
		case 'n':
			j := strings.IndexByte(c[i:], ';')
			if j < 0 {
				return false
			}
			i += j + 1
		case 'l', 'm':
			j := strings.IndexByte(c[i:], ':')
			if j < 0 {
				return false
			}
			i += j + 1
		case 'b':
			i += 2
		default: // 'z'
			i++
		}
	}
	return false
}

// Display renders a value briefly for plan reasons, such as "min_max", 0.1, [20, 100].
func Display(v cty.Value) string {
	s := display(v)
	if r := []rune(s); len(r) > 60 {
		s = string(r[:57]) + "..."
	}
	return s
}

func display(v cty.Value) string {
	if !v.IsKnown() {
		return "(known after apply)"
	}
	if v.IsNull() {
		return "null"
	}
	v, _ = v.Unmark()
	t := v.Type()
	switch {
	case t == cty.String:
		return strconv.Quote(v.AsString())
	case t == cty.Number:
		return numberText(v.AsBigFloat())
	case t == cty.Bool:
		return strconv.FormatBool(v.True())
	case t.IsListType() || t.IsTupleType() || t.IsSetType():
		var parts []string
		for it := v.ElementIterator(); it.Next(); {
			_, e := it.Element()
			parts = append(parts, display(e))
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case t.IsMapType() || t.IsObjectType():
		var parts []string
		for it := v.ElementIterator(); it.Next(); {
			k, e := it.Element()
			parts = append(parts, k.AsString()+" = "+display(e))
		}
		sort.Strings(parts)
		return "{ " + strings.Join(parts, ", ") + " }"
	}
	return t.FriendlyName()
}
