package dataset

import (
	"math"
	"strconv"
	"unsafe"
)

// pow10f32[k] = 10^k, exact in float32 for k <= 10.
var pow10f32 = [...]float32{1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10}

// parseFloat32 parses a decimal number the way strconv.ParseFloat(s, 32)
// does (correctly rounded), without allocating. ok is false for text that is
// not a number; NaN, ±Inf and overflow come back as such with ok true, for
// the caller to reject.
//
// Short decimals (at most 7 significant digits, exponent within ±10) take a
// fast path: one exact float32 times or divided by an exact power of ten,
// which IEEE arithmetic rounds correctly. Everything else goes to
// strconv.ParseFloat on the bytes viewed as a string.
func parseFloat32(b []byte) (float32, bool) {
	if len(b) == 0 {
		return 0, false
	}
	i := 0
	neg := false
	switch b[0] {
	case '-':
		neg = true
		i++
	case '+':
		i++
	}
	var mant uint64
	exp := 0
	digits := false
	for ; i < len(b); i++ {
		c := b[i] - '0'
		if c > 9 {
			break
		}
		digits = true
		if mant >= 1<<24 {
			return slowFloat32(b)
		}
		mant = mant*10 + uint64(c)
	}
	if i < len(b) && b[i] == '.' {
		i++
		for ; i < len(b); i++ {
			c := b[i] - '0'
			if c > 9 {
				break
			}
			digits = true
			if mant >= 1<<24 {
				return slowFloat32(b)
			}
			mant = mant*10 + uint64(c)
			exp--
		}
	}
	if !digits {
		return slowFloat32(b) // "nan", "inf", or not a number
	}
	if i < len(b) {
		if b[i] != 'e' && b[i] != 'E' {
			return slowFloat32(b) // let strconv decide (it will reject)
		}
		i++
		eneg := false
		if i < len(b) && (b[i] == '-' || b[i] == '+') {
			eneg = b[i] == '-'
			i++
		}
		if i == len(b) {
			return 0, false
		}
		e := 0
		for ; i < len(b); i++ {
			c := b[i] - '0'
			if c > 9 || e > 1000 {
				return slowFloat32(b)
			}
			e = e*10 + int(c)
		}
		if eneg {
			e = -e
		}
		exp += e
	}
	if mant > 1<<24 || exp < -10 || exp > 10 {
		return slowFloat32(b)
	}
	f := float32(mant)
	if exp < 0 {
		f /= pow10f32[-exp]
	} else {
		f *= pow10f32[exp]
	}
	if neg {
		f = -f
	}
	return f, true
}

func slowFloat32(b []byte) (float32, bool) {
	v, err := strconv.ParseFloat(unsafe.String(&b[0], len(b)), 32)
	if err != nil {
		if ne, ok := err.(*strconv.NumError); ok && ne.Err == strconv.ErrRange {
			return float32(v), true // ±Inf or a denormal rounded to 0
		}
		return 0, false
	}
	return float32(v), true
}

func finite32(f float32) bool {
	return !math.IsNaN(float64(f)) && !math.IsInf(float64(f), 0)
}

// parseNumberLabel parses a label as the finite number it spells: a class
// (1..K, or any integers) or a real target, as LIBSVM multiclass and
// regression files hold them. Binary files keep their values (-1, +1, 0 or
// 1); what a label means is the model's business (binary models read a label
// above 0 as positive), recorded in the manifest's label statistics.
func parseNumberLabel(b []byte) (float32, bool) {
	switch len(b) {
	case 1:
		switch b[0] {
		case '1':
			return 1, true
		case '0':
			return 0, true
		}
	case 2:
		if b[1] == '1' {
			switch b[0] {
			case '+':
				return 1, true
			case '-':
				return -1, true
			}
		}
	}
	f, ok := parseFloat32(b)
	if !ok || !finite32(f) {
		return 0, false
	}
	return f, true
}

// parseLabel accepts -1, +1, 0, 1 (and spellings such as "1.0") and maps
// them to 0 or 1: Criteo's labels, which are clicks.
func parseLabel(b []byte) (float32, bool) {
	switch len(b) {
	case 1:
		switch b[0] {
		case '1':
			return 1, true
		case '0':
			return 0, true
		}
	case 2:
		if b[1] == '1' {
			switch b[0] {
			case '+':
				return 1, true
			case '-':
				return 0, true
			}
		}
	}
	f, ok := parseFloat32(b)
	if !ok {
		return 0, false
	}
	switch f {
	case 1:
		return 1, true
	case 0, -1:
		return 0, true
	}
	return 0, false
}
