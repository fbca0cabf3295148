package gridsearch

import (
	"fmt"
	"math/big"
	"sort"
	"strconv"
	"strings"

	"github.com/zclconf/go-cty/cty"
)

// canonical encodes a value exactly as planner.Canonical does — numbers by value
// (0.1 and 0.10 agree), lists, tuples and sets alike as sequences (sets sorted),
// objects and maps alike as key-sorted pairs, strings length-prefixed — so trial IDs
// and trial cache keys follow the planner's notion of equal configurations.
//
// It is a copy because the planner's tests import this package (for its schema),
// so this package cannot import the planner; TestCanonicalMatchesPlanner holds the
// two to the same output. Moving Canonical to a leaf package both import would let
// this copy go.
func canonical(v cty.Value) string {
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
		fmt.Fprintf(b, "s%d:%s", len(s), s)
	case t == cty.Number:
		b.WriteByte('n')
		b.WriteString(canonNumber(v.AsBigFloat()))
		b.WriteByte(';')
	case t == cty.Bool:
		if v.True() {
			b.WriteString("b1")
		} else {
			b.WriteString("b0")
		}
	case t.IsListType() || t.IsTupleType():
		fmt.Fprintf(b, "l%d:", v.LengthInt())
		for it := v.ElementIterator(); it.Next(); {
			_, e := it.Element()
			canon(b, e)
		}
	case t.IsSetType():
		var elems []string
		for it := v.ElementIterator(); it.Next(); {
			_, e := it.Element()
			elems = append(elems, canonical(e))
		}
		sort.Strings(elems)
		fmt.Fprintf(b, "l%d:", len(elems))
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
		fmt.Fprintf(b, "m%d:", len(kvs))
		for _, e := range kvs {
			canon(b, cty.StringVal(e.k))
			canon(b, e.v)
		}
	default:
		fmt.Fprintf(b, "x%d:%s", len(t.FriendlyName()), t.FriendlyName())
	}
}

// canonNumber renders a number without trailing zeros: integers exactly, other
// numbers as the shortest text of their nearest float64.
func canonNumber(f *big.Float) string {
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
