package dataset

import (
	"bytes"
	"fmt"
	"math"
)

// Ratings is the "ratings" format of collaborative filtering: one rating a
// line, user, item and rating, optionally followed by a timestamp (or any
// further fields), which is ignored:
//
//	196,242,3,881250949        comma
//	196	242	3	881250949  tab
//	1::1193::5::978300760      "::" (MovieLens 1M and 10M)
//
// Each line's separator is found on the line: "::" if it holds one, else a
// tab if it holds one, else a comma. Spaces around fields are trimmed. A line
// whose rating field is a column name (rating, ratings, score, stars, value,
// label, r or y, ignoring case) is a header and holds no row; blank lines and lines
// starting with '#' hold none either.
//
// User and item ids are tokens, mapped to ids without a dictionary, so that
// any byte range of a file parses alone and every task and predict map a
// token alike: a token of decimal digits whose value is below 2^hash_bits is
// its own id (MovieLens, Netflix and most published sets number their users
// and items densely from 0 or 1, so ids stay dense); any other token is
// hashed, Hash(key of "user" or "item", token) mod 2^hash_bits, and two such
// tokens (or a hashed token and a number) can share an id, as any hashed
// feature can. The user with id u takes slot 2u and the item with id i slot
// 2i+1, so the feature space is 1 + the largest slot (the data decides:
// Features is 0). The row's Label is the rating, and both entries' Values
// are the rating too, so that per-slot statistics give each user's and
// item's count and mean rating and their sum the dataset's.
//
// With Pairs set (prediction input), the rating may be absent: a line of
// user and item only gives a Row with Label NaN.
type Ratings struct {
	bits    int
	mask    uint64
	userKey uint64
	itemKey uint64
	// Pairs accepts lines of user and item only (Label NaN).
	Pairs bool
}

// Keys of the hashed user and item columns.
var (
	ratingsUserKey = NamedColumnKey("user")
	ratingsItemKey = NamedColumnKey("item")
)

// NewRatings returns a ratings parser whose ids are below 2^hashBits (0: the
// default, DefaultHashBits).
func NewRatings(hashBits int) (*Ratings, error) {
	if hashBits == 0 {
		hashBits = DefaultHashBits
	}
	if hashBits < 1 || hashBits > MaxHashBits {
		return nil, fmt.Errorf("ratings: hash_bits must be between 1 and %d; got %d", MaxHashBits, hashBits)
	}
	return &Ratings{bits: hashBits, mask: 1<<hashBits - 1, userKey: ratingsUserKey, itemKey: ratingsItemKey}, nil
}

// Name is "ratings".
func (r *Ratings) Name() string { return "ratings" }

// Features is 0: 1 + the largest slot in the data.
func (r *Ratings) Features() int { return 0 }

// HashBits is the bound of ids: every id is below 2^HashBits.
func (r *Ratings) HashBits() int { return r.bits }

// UserSlot and ItemSlot are the slots of a user and an item token.
func (r *Ratings) UserSlot(tok []byte) uint32 { return 2 * r.id(tok, r.userKey) }

// ItemSlot is the slot of an item token (see UserSlot).
func (r *Ratings) ItemSlot(tok []byte) uint32 { return 2*r.id(tok, r.itemKey) + 1 }

func (r *Ratings) id(tok []byte, key uint64) uint32 {
	if len(tok) > 0 && len(tok) <= 10 {
		var v uint64
		digits := true
		for _, c := range tok {
			if c < '0' || c > '9' {
				digits = false
				break
			}
			v = v*10 + uint64(c-'0')
		}
		if digits && v <= r.mask {
			return uint32(v)
		}
	}
	return uint32(Hash(key, tok) & r.mask)
}

var ratingsHeaderNames = []string{"rating", "ratings", "score", "stars", "value", "label", "r", "y"}

// ParseLine parses one line (see Ratings).
func (r *Ratings) ParseLine(line []byte, row *Row) (bool, error) {
	if len(bytes.TrimSpace(line)) == 0 || line[0] == '#' {
		return false, nil
	}
	sep := []byte(",")
	switch {
	case bytes.Contains(line, []byte("::")):
		sep = []byte("::")
	case bytes.IndexByte(line, '\t') >= 0:
		sep = []byte("\t")
	}
	// The first three fields and their 1-based columns.
	var fields [3][]byte
	var cols, starts [3]int
	n, pos := 0, 0
	for n < 3 {
		k := bytes.Index(line[pos:], sep)
		end := len(line)
		if k >= 0 {
			end = pos + k
		}
		f, lead := trimField(line[pos:end])
		fields[n], cols[n], starts[n] = f, pos+lead+1, pos+1
		n++
		if k < 0 {
			break
		}
		pos = end + len(sep)
	}
	need := 3
	if r.Pairs {
		need = 2
	}
	if n < need {
		what := "user, item and rating"
		if r.Pairs {
			what = "user and item (and optionally a rating)"
		}
		return false, &ParseError{Column: 1, Text: clipText(line), Reason: ReasonColumns,
			Detail: fmt.Sprintf("want %s separated by a comma, a tab or \"::\"; found %d field(s)", what, n)}
	}
	if n == 3 {
		for _, h := range ratingsHeaderNames {
			if bytes.EqualFold(fields[2], []byte(h)) {
				return false, nil
			}
		}
	}
	for k, what := range []string{"user", "item"} {
		if len(fields[k]) == 0 {
			return false, &ParseError{Column: starts[k], Text: clipText(line[starts[k]-1:]), Reason: ReasonValue, Detail: "empty " + what + " id"}
		}
	}
	u, i := r.UserSlot(fields[0]), r.ItemSlot(fields[1])
	var rating float32
	switch {
	case n == 3:
		v, ok := parseFloat32(fields[2])
		if !ok {
			return false, &ParseError{Column: cols[2], Text: clipText(fields[2]), Reason: ReasonLabel, Detail: "the rating must be a number"}
		}
		if !finite32(v) {
			return false, &ParseError{Column: cols[2], Text: clipText(fields[2]), Reason: ReasonNonFinite, Detail: "the rating must be finite"}
		}
		rating = v
	default:
		rating = float32(math.NaN())
	}
	row.Label = rating
	row.Indices = append(row.Indices[:0], u, i)
	if i < u {
		row.Indices[0], row.Indices[1] = i, u
	}
	row.Values = append(row.Values[:0], rating, rating)
	if n < 3 {
		row.Values[0], row.Values[1] = 1, 1
	}
	return true, nil
}

// RatingPair returns the user and item slot of a row the Ratings format
// parsed: the even slot is the user's.
func RatingPair(indices []uint32) (user, item uint32, ok bool) {
	if len(indices) != 2 || indices[0]%2 == indices[1]%2 {
		return 0, 0, false
	}
	if indices[0]%2 == 0 {
		return indices[0], indices[1], true
	}
	return indices[1], indices[0], true
}

// trimField trims spaces (and a trailing \r) and returns how many bytes it
// cut from the front.
func trimField(b []byte) ([]byte, int) {
	lead := 0
	for lead < len(b) && (b[lead] == ' ' || b[lead] == '\r') {
		lead++
	}
	b = b[lead:]
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b, lead
}

func clipText(b []byte) string {
	if len(b) > maxText {
		b = b[:maxText]
	}
	return string(b)
}
