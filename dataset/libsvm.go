package dataset

import (
	"fmt"
	"sort"
)

// LIBSVM parses LIBSVM/svmlight lines:
//
//	<label> <index>:<value> <index>:<value> ... [# comment]
//
// The label is -1, +1, 0 or 1 (also written "1.0" and so on); -1 becomes 0.
// Indices are 1-based positive integers up to 2^32, in any order (the row is
// sorted), each at most once per line; slot = index-1. Values are finite
// decimal numbers (explicit zeros are kept). A "qid:N" token is ignored.
// Blank lines and lines starting with "#" hold no row. Fields are separated
// by spaces or tabs; trailing blanks and "\r" are ignored.
//
// With hashing (NewLIBSVMHashed, as Vowpal Wabbit's -b), index i goes to
// slot Fmix64(i XOR LIBSVMHashKey) mod 2^bits instead, and values of indices
// that share a slot add up; duplicates are checked on the indices as
// written.
type LIBSVM struct {
	sorter pairSorter
	mask   uint64 // 0: no hashing
}

// LIBSVMHashKey seeds the hashing of LIBSVM indices. Like Hash, it is frozen.
var LIBSVMHashKey = NamedColumnKey("libsvm index")

// NewLIBSVM returns a LIBSVM parser that uses indices as they are.
func NewLIBSVM() *LIBSVM { return &LIBSVM{} }

// NewLIBSVMHashed returns a LIBSVM parser that hashes indices into 2^bits
// slots (1 <= bits <= MaxHashBits).
func NewLIBSVMHashed(bits int) (*LIBSVM, error) {
	if bits < 1 || bits > MaxHashBits {
		return nil, fmt.Errorf("libsvm: hash_bits = %d: must be between 1 and %d", bits, MaxHashBits)
	}
	return &LIBSVM{mask: 1<<bits - 1}, nil
}

// Name returns "libsvm".
func (*LIBSVM) Name() string { return "libsvm" }

// Features returns 0 without hashing (the data decides: the largest index
// seen), else 2^bits.
func (p *LIBSVM) Features() int {
	if p.mask == 0 {
		return 0
	}
	return int(p.mask) + 1
}

const maxLIBSVMIndex = 1 << 32

func isBlank(c byte) bool { return c == ' ' || c == '\t' }

// ParseLine implements Format. It costs one pass over the line plus a sort
// when the indices are out of order; it allocates only when row's slices
// must grow or the line is bad.
func (p *LIBSVM) ParseLine(line []byte, row *Row) (bool, error) {
	n := len(line)
	i := 0
	for i < n && isBlank(line[i]) {
		i++
	}
	if i == n || line[i] == '#' {
		return false, nil
	}
	j := i
	for j < n && !isBlank(line[j]) {
		j++
	}
	label, ok := parseNumberLabel(line[i:j])
	if !ok {
		return false, perr(line, i, j, ReasonLabel, "the label must be a finite number (a class such as -1, +1, 0..K-1, or a real target)")
	}
	row.Label = label
	idx, val := row.Indices[:0], row.Values[:0]
	sorted := true
	prev := int64(-1)
	i = j
	for {
		for i < n && isBlank(line[i]) {
			i++
		}
		if i == n || line[i] == '#' {
			break
		}
		start := i
		var v uint64
		k := i
		for k < n {
			c := line[k] - '0'
			if c > 9 {
				break
			}
			v = v*10 + uint64(c)
			if v > maxLIBSVMIndex {
				return false, p.badIndex(line, start)
			}
			k++
		}
		if k == i || k == n || line[k] != ':' {
			end := tokenEnd(line, start)
			if end-start > 4 && string(line[start:start+4]) == "qid:" {
				i = end
				continue
			}
			return false, p.badIndex(line, start)
		}
		if v == 0 {
			return false, perr(line, start, tokenEnd(line, start), ReasonIndex, "indices are 1-based: index 0 is not allowed")
		}
		k++ // ':'
		vs := k
		var f float32
		if k < n && line[k] == '1' && (k+1 == n || isBlank(line[k+1])) {
			f = 1
			k++
		} else {
			for k < n && !isBlank(line[k]) {
				k++
			}
			if f, ok = parseFloat32(line[vs:k]); !ok {
				return false, perr(line, start, k, ReasonValue, "expected index:value with a decimal number value")
			}
			if !finite32(f) {
				return false, perr(line, start, k, ReasonNonFinite, "values must be finite numbers")
			}
		}
		slot := int64(v - 1)
		if slot <= prev {
			if slot == prev {
				return false, perr(line, start, k, ReasonDuplicate, "each index may appear once per line")
			}
			sorted = false
		}
		prev = slot
		idx = append(idx, uint32(slot))
		val = append(val, f)
		i = k
	}
	row.Indices, row.Values = idx, val
	if !sorted {
		p.sorter.idx, p.sorter.val = idx, val
		p.sorter.sort()
		p.sorter.idx, p.sorter.val = nil, nil
		for k := 1; k < len(idx); k++ {
			if idx[k] == idx[k-1] {
				return false, p.duplicate(line, idx[k])
			}
		}
	}
	if p.mask != 0 {
		return p.hash(line, row)
	}
	return true, nil
}

// hash moves a parsed row's slots to their hashed ones, adding up values
// that collide.
func (p *LIBSVM) hash(line []byte, row *Row) (bool, error) {
	idx, val := row.Indices, row.Values
	for k, i := range idx {
		idx[k] = uint32(Fmix64((uint64(i)+1)^LIBSVMHashKey) & p.mask)
	}
	p.sorter.idx, p.sorter.val = idx, val
	p.sorter.sort()
	p.sorter.idx, p.sorter.val = nil, nil
	w := 0
	for k := range idx {
		if w > 0 && idx[k] == idx[w-1] {
			val[w-1] += val[k]
			if !finite32(val[w-1]) {
				return false, perr(line, 0, len(line), ReasonNonFinite, "values hashed into one slot add up past the float32 range")
			}
			continue
		}
		idx[w], val[w] = idx[k], val[k]
		w++
	}
	row.Indices, row.Values = idx[:w], val[:w]
	return true, nil
}

// tokenEnd returns the end of the blank-delimited token starting at i.
func tokenEnd(line []byte, i int) int {
	for i < len(line) && !isBlank(line[i]) {
		i++
	}
	return i
}

func (p *LIBSVM) badIndex(line []byte, start int) error {
	end := tokenEnd(line, start)
	tok := line[start:end]
	colon := -1
	for k, c := range tok {
		if c == ':' {
			colon = k
			break
		}
	}
	switch {
	case colon < 0:
		return perr(line, start, end, ReasonSyntax, "expected index:value")
	case tok[0] == '-':
		return perr(line, start, end, ReasonIndex, "indices must be positive integers: negative index")
	default:
		return perr(line, start, end, ReasonIndex, "indices must be integers from 1 to 4294967296")
	}
}

// duplicate builds the error for a duplicate slot found after sorting,
// pointing at its second occurrence.
func (p *LIBSVM) duplicate(line []byte, slot uint32) error {
	seen := 0
	i := tokenEnd(line, 0)
	for i < len(line) {
		for i < len(line) && isBlank(line[i]) {
			i++
		}
		start := i
		if start < len(line) && line[start] == '#' {
			break
		}
		i = tokenEnd(line, i)
		if start == i || line[start] < '0' || line[start] > '9' {
			continue
		}
		var v uint64
		for k := start; k < i && line[k] != ':'; k++ {
			v = v*10 + uint64(line[k]-'0')
		}
		if v == uint64(slot)+1 {
			seen++
			if seen == 2 {
				return perr(line, start, i, ReasonDuplicate, "each index may appear once per line")
			}
		}
	}
	return perr(line, 0, len(line), ReasonDuplicate, "each index may appear once per line")
}

// pairSorter sorts indices and their values together.
type pairSorter struct {
	idx []uint32
	val []float32
}

func (s *pairSorter) Len() int           { return len(s.idx) }
func (s *pairSorter) Less(a, b int) bool { return s.idx[a] < s.idx[b] }
func (s *pairSorter) Swap(a, b int) {
	s.idx[a], s.idx[b] = s.idx[b], s.idx[a]
	s.val[a], s.val[b] = s.val[b], s.val[a]
}

func (s *pairSorter) sort() {
	if len(s.idx) > 32 {
		sort.Sort(s)
		return
	}
	for a := 1; a < len(s.idx); a++ {
		ki, kv := s.idx[a], s.val[a]
		b := a - 1
		for b >= 0 && s.idx[b] > ki {
			s.idx[b+1], s.val[b+1] = s.idx[b], s.val[b]
			b--
		}
		s.idx[b+1], s.val[b+1] = ki, kv
	}
}
