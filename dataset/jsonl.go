package dataset

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
)

// ReasonKey is a JSON line with a numeric value under a key the format does
// not know (numeric slots are fixed when loading starts).
const ReasonKey = "unknown key"

// JSONLOptions configure the JSON lines parser.
type JSONLOptions struct {
	// Label names the label key (required); its values are finite numbers
	// (as numbers or strings) or true/false (1/0).
	Label string
	// Numeric names the numeric keys; the i-th takes slot i.
	Numeric []string
	// Categorical names the keys whose values are hashed (as CSV's, with
	// NamedColumnKey). A key in no list whose value is a string is hashed
	// too; one whose value is a number is a bad line (ReasonKey).
	Categorical []string
	// Ignore names keys to leave out, whatever their values (nested ones
	// included).
	Ignore []string
	// HashBits sets the hashed space to 2^HashBits slots; 0 means
	// DefaultHashBits.
	HashBits int
}

type jsonKey struct {
	kind csvKind
	slot uint32 // numeric
	key  uint64 // categorical
}

// JSONL parses JSON lines: one object per line, {"key": value, ...}, keys in
// any order. Numeric keys take slots 0..k-1 (in Numeric's order) with their
// number (true and false are 1 and 0); a categorical value v under key n
// takes slot k + Hash(NamedColumnKey(n), v) mod 2^HashBits with value 1
// (numbers are hashed as written). null and absent keys are missing. Nested
// objects and arrays are accepted only under ignored keys. Blank lines hold
// no row.
type JSONL struct {
	keys    map[string]jsonKey
	label   string
	numeric []string
	mask    uint64
	sorter  pairSorter
	cat     []uint32
	scratch []byte
}

// NewJSONL returns a JSON lines parser.
func NewJSONL(opts JSONLOptions) (*JSONL, error) {
	if opts.HashBits == 0 {
		opts.HashBits = DefaultHashBits
	}
	if opts.HashBits < 1 || opts.HashBits > MaxHashBits {
		return nil, fmt.Errorf("jsonl: hash_bits = %d: must be between 1 and %d", opts.HashBits, MaxHashBits)
	}
	if opts.Label == "" {
		return nil, fmt.Errorf("jsonl: no label key given")
	}
	j := &JSONL{keys: map[string]jsonKey{opts.Label: {kind: csvLabel}}, label: opts.Label, numeric: opts.Numeric, mask: 1<<opts.HashBits - 1}
	add := func(name string, k jsonKey) error {
		if old, dup := j.keys[name]; dup {
			what := map[csvKind]string{csvLabel: "the label", csvIgnore: "ignored", csvNumeric: "numeric", csvCategorical: "categorical"}
			return fmt.Errorf("jsonl: key %q cannot be both %s and %s", name, what[old.kind], what[k.kind])
		}
		j.keys[name] = k
		return nil
	}
	for _, n := range opts.Ignore {
		if err := add(n, jsonKey{kind: csvIgnore}); err != nil {
			return nil, err
		}
	}
	for _, n := range opts.Categorical {
		if err := add(n, jsonKey{kind: csvCategorical, key: NamedColumnKey(n)}); err != nil {
			return nil, err
		}
	}
	for i, n := range opts.Numeric {
		if err := add(n, jsonKey{kind: csvNumeric, slot: uint32(i)}); err != nil {
			return nil, err
		}
	}
	return j, nil
}

// Name returns "jsonl".
func (*JSONL) Name() string { return "jsonl" }

// Features returns the number of numeric keys plus 2^HashBits.
func (j *JSONL) Features() int { return len(j.numeric) + int(j.mask) + 1 }

// NumericColumns returns the numeric keys; the i-th has slot i.
func (j *JSONL) NumericColumns() []string { return j.numeric }

func skipWS(line []byte, i int) int {
	for i < len(line) && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r' || line[i] == '\n') {
		i++
	}
	return i
}

// jsonString scans the string starting at line[i] (a '"'): its contents'
// bounds, whether it holds escapes, and the index after the closing quote.
func jsonString(line []byte, i int) (start, end, next int, esc bool, err *ParseError) {
	k := i + 1
	for k < len(line) {
		switch c := line[k]; {
		case c == '"':
			return i + 1, k, k + 1, esc, nil
		case c == '\\':
			esc = true
			k += 2
		case c < 0x20:
			return 0, 0, 0, false, perr(line, k, k+1, ReasonSyntax, "control character in a JSON string")
		default:
			k++
		}
	}
	return 0, 0, 0, false, perr(line, i, len(line), ReasonQuote, "JSON string is not closed on this line")
}

// unescape decodes a JSON string with escapes (line[i:next] with its quotes).
func (j *JSONL) unescape(line []byte, i, next int) ([]byte, *ParseError) {
	var s string
	if err := json.Unmarshal(line[i:next], &s); err != nil {
		return nil, perr(line, i, next, ReasonSyntax, "bad escape in a JSON string")
	}
	j.scratch = append(j.scratch[:0], s...)
	return j.scratch, nil
}

// skipNested skips the object or array starting at line[i] and returns the
// index after it.
func skipNested(line []byte, i int) (int, *ParseError) {
	depth := 0
	for k := i; k < len(line); {
		switch line[k] {
		case '{', '[':
			depth++
		case '}', ']':
			depth--
			if depth == 0 {
				return k + 1, nil
			}
		case '"':
			_, _, next, _, err := jsonString(line, k)
			if err != nil {
				return 0, err
			}
			k = next
			continue
		}
		k++
	}
	return 0, perr(line, i, len(line), ReasonSyntax, "nested value is not closed on this line")
}

func isNumByte(c byte) bool {
	return c >= '0' && c <= '9' || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E'
}

// ParseLine implements Format.
func (j *JSONL) ParseLine(line []byte, row *Row) (bool, error) {
	i := skipWS(line, 0)
	if i == len(line) {
		return false, nil
	}
	if line[i] != '{' {
		return false, perr(line, i, i+1, ReasonSyntax, "each line must be one JSON object, {...}")
	}
	idx, val := row.Indices[:0], row.Values[:0]
	j.cat = j.cat[:0]
	labelSeen := false
	i = skipWS(line, i+1)
	if i < len(line) && line[i] == '}' {
		return false, perr(line, 0, len(line), ReasonLabel, fmt.Sprintf("no %q key", j.label))
	}
	for {
		if i >= len(line) || line[i] != '"' {
			return false, perr(line, i, i+1, ReasonSyntax, "expected a quoted key")
		}
		ks, ke, next, esc, pe := jsonString(line, i)
		if pe != nil {
			return false, pe
		}
		key := line[ks:ke]
		if esc {
			if key, pe = j.unescape(line, i, next); pe != nil {
				return false, pe
			}
		}
		k, known := j.keys[string(key)]
		keyStart := i
		i = skipWS(line, next)
		if i >= len(line) || line[i] != ':' {
			return false, perr(line, i, i+1, ReasonSyntax, "expected ':' after a key")
		}
		i = skipWS(line, i+1)
		if i >= len(line) {
			return false, perr(line, i, i, ReasonSyntax, "expected a value")
		}
		// The value: its bounds, and what it is.
		vs, ve := i, i
		var str, null, nested bool
		var boolean float32 = -1
		switch c := line[i]; {
		case c == '"':
			s, e, nx, esc, pe := jsonString(line, i)
			if pe != nil {
				return false, pe
			}
			vs, ve, next, str = s, e, nx, true
			if esc && (!known || k.kind != csvIgnore) {
				v, pe := j.unescape(line, i, nx)
				if pe != nil {
					return false, pe
				}
				line = append(append(append([]byte(nil), line[:s]...), v...), line[e:]...) // rare: rewrite in a copy
				ve = s + len(v)
				next = ve + 1
			}
		case c == '{' || c == '[':
			nx, pe := skipNested(line, i)
			if pe != nil {
				return false, pe
			}
			ve, next, nested = nx, nx, true
		case bytes.HasPrefix(line[i:], []byte("true")):
			ve, next, boolean = i+4, i+4, 1
		case bytes.HasPrefix(line[i:], []byte("false")):
			ve, next, boolean = i+5, i+5, 0
		case bytes.HasPrefix(line[i:], []byte("null")):
			ve, next, null = i+4, i+4, true
		case isNumByte(c):
			for ve < len(line) && isNumByte(line[ve]) {
				ve++
			}
			next = ve
		default:
			return false, perr(line, i, i+1, ReasonSyntax, "expected a JSON value")
		}
		value := line[vs:ve]
		if !known {
			switch {
			case str:
				k = jsonKey{kind: csvCategorical, key: NamedColumnKey(string(key))}
			case null:
				k = jsonKey{kind: csvIgnore}
			default:
				return false, perr(line, keyStart, ve, ReasonKey, fmt.Sprintf("key %q was not in the sample the numeric keys were taken from; list it in ignore or categorical", key))
			}
		}
		switch k.kind {
		case csvLabel:
			label, ok := parseNumberLabel(value)
			if boolean >= 0 {
				label, ok = boolean, true
			}
			if !ok || nested || null {
				return false, perr(line, vs, ve, ReasonLabel, fmt.Sprintf("label key %q must be a finite number (as a number or a string), true or false; map class names to numbers first", j.label))
			}
			row.Label = label
			labelSeen = true
		case csvNumeric:
			if null {
				break
			}
			if nested {
				return false, perr(line, vs, ve, ReasonValue, fmt.Sprintf("key %q is numeric, not an object or array (list it in ignore)", key))
			}
			x, ok := boolean, boolean >= 0
			if !ok && !str {
				x, ok = parseFloat32(value)
			}
			if !ok {
				return false, perr(line, vs, ve, ReasonValue, fmt.Sprintf("key %q is numeric (list it as categorical to hash its values)", key))
			}
			if !finite32(x) {
				return false, perr(line, vs, ve, ReasonNonFinite, fmt.Sprintf("key %q must be finite", key))
			}
			idx = append(idx, k.slot)
			val = append(val, x)
		case csvCategorical:
			if null {
				break
			}
			if nested {
				return false, perr(line, vs, ve, ReasonValue, fmt.Sprintf("key %q holds an object or array, which cannot be hashed (list it in ignore)", key))
			}
			j.cat = append(j.cat, uint32(len(j.numeric))+uint32(Hash(k.key, value)&j.mask))
		}
		i = skipWS(line, next)
		if i < len(line) && line[i] == ',' {
			i = skipWS(line, i+1)
			continue
		}
		if i < len(line) && line[i] == '}' {
			break
		}
		return false, perr(line, i, i+1, ReasonSyntax, "expected ',' or '}' after a value")
	}
	if e := skipWS(line, i+1); e != len(line) {
		return false, perr(line, e, len(line), ReasonSyntax, "text after the object (one object per line)")
	}
	if !labelSeen {
		return false, perr(line, 0, len(line), ReasonLabel, fmt.Sprintf("no %q key", j.label))
	}
	j.sorter.idx, j.sorter.val = idx, val
	j.sorter.sort()
	for k := 1; k < len(idx); k++ {
		if idx[k] == idx[k-1] {
			name := j.numeric[idx[k]]
			at := bytes.Index(line, []byte(strconv.Quote(name)))
			return false, perr(line, max(at, 0), max(at, 0)+len(name)+2, ReasonDuplicate, fmt.Sprintf("key %q appears twice", name))
		}
	}
	sortUint32(j.cat)
	for k, slot := range j.cat {
		if k > 0 && slot == j.cat[k-1] {
			val[len(val)-1]++
			continue
		}
		idx = append(idx, slot)
		val = append(val, 1)
	}
	row.Indices, row.Values = idx, val
	return true, nil
}

// InferJSONL reads sample — the start of a JSON lines file — and returns
// its keys other than label and ignore, in the order first seen, split into
// numeric ones (numbers, booleans, nulls only) and categorical ones (a
// string anywhere). Keys holding objects or arrays are returned as nested
// (they must be ignored). Lines that are not JSON objects are skipped.
func InferJSONL(sample []byte, label string, ignore []string) (numeric, categorical, nested []string) {
	skip := map[string]bool{label: true}
	for _, n := range ignore {
		skip[n] = true
	}
	var order []string
	kind := map[string]string{}
	for len(sample) > 0 {
		nl := bytes.IndexByte(sample, '\n')
		if nl < 0 {
			break // a partial last line
		}
		line := sample[:nl]
		sample = sample[nl+1:]
		var obj map[string]json.RawMessage
		if json.Unmarshal(line, &obj) != nil {
			continue
		}
		// Keys in the order they appear on the line.
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.Token()
		for dec.More() {
			t, err := dec.Token()
			if err != nil {
				break
			}
			name, _ := t.(string)
			var raw json.RawMessage
			if dec.Decode(&raw) != nil {
				break
			}
			if skip[name] {
				continue
			}
			k := "numeric"
			switch raw[0] {
			case '"':
				k = "categorical"
			case '{', '[':
				k = "nested"
			}
			old, seen := kind[name]
			if !seen {
				order = append(order, name)
				kind[name] = k
			} else if old != k && old != "nested" && k != "numeric" {
				kind[name] = k
			}
		}
	}
	for _, n := range order {
		switch kind[n] {
		case "numeric":
			numeric = append(numeric, n)
		case "categorical":
			categorical = append(categorical, n)
		default:
			nested = append(nested, n)
		}
	}
	return numeric, categorical, nested
}
