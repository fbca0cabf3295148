package load

import "slices"

// Sizing of the parse wave. Each input (source, test_source) is cut into
// byte ranges that tile the concatenation of its objects (in key order); a
// task parses one range, which may span the end of one object and the start
// of the next (as segments), and a line belongs to the range its first byte
// falls in.
//
// By default a task gets about max(MinTaskBytes, total/(TasksPerSlot ×
// capacity)) bytes: ranges of at least 32 MiB keep per-task costs (an
// invocation, a partition flush, a statistics object to merge) small next to
// a third of a second of parsing, and up to TasksPerSlot tasks per backend
// slot let fast tasks make up for slow ones. `tasks` overrides the count.
const (
	MinTaskBytes = 32 << 20
	TasksPerSlot = 4
)

// taskCount returns how many tasks parse total bytes.
func taskCount(total int64, capacity, tasks int) int {
	if total <= 0 {
		return 0
	}
	n := int64(tasks)
	if n <= 0 {
		size := max(MinTaskBytes, ceilDiv(total, int64(TasksPerSlot*max(capacity, 1))))
		n = ceilDiv(total, size)
	}
	return int(max(1, min(n, total)))
}

func ceilDiv(a, b int64) int64 { return (a + b - 1) / b }

// span is a byte range [start, end) of object obj.
type span struct {
	obj        int
	start, end int64
}

// cut splits the concatenation of objects of the given sizes into n shares
// of about equal size (share k covers virtual bytes [k·T/n, (k+1)·T/n)) and
// returns each share's spans, in order. Empty objects get no span.
func cut(sizes []int64, n int) [][]span {
	var total int64
	for _, s := range sizes {
		total += s
	}
	if n <= 0 || total == 0 {
		return nil
	}
	shares := make([][]span, n)
	var base int64 // virtual offset of object o
	o := 0
	for k := 0; k < n; k++ {
		lo := total * int64(k) / int64(n)
		hi := total * int64(k+1) / int64(n)
		for lo < hi {
			for base+sizes[o] <= lo { // skip objects that end before lo (and empty ones)
				base += sizes[o]
				o++
			}
			end := min(hi, base+sizes[o])
			shares[k] = append(shares[k], span{obj: o, start: lo - base, end: end - base})
			lo = end
		}
	}
	return shares
}

// cutWhole is cut for inputs some of whose objects must be read whole
// (compressed ones, which cannot be read from the middle, and Parquet row
// groups): share k still covers about virtual bytes [k·T/n, (k+1)·T/n), but
// a whole object goes entire to the share its middle byte falls in (so
// shares may be empty, and are then dropped). So several compressed files
// parse in parallel, small ones grouped, while one large compressed file is
// one task that streams it once. Without whole objects it is cut.
func cutWhole(sizes []int64, whole []bool, n int) [][]span {
	if !slices.Contains(whole, true) {
		return cut(sizes, n)
	}
	var total int64
	for _, s := range sizes {
		total += s
	}
	if n <= 0 || total == 0 {
		return nil
	}
	N := int64(n)
	// shareOf returns the share holding virtual byte v.
	shareOf := func(v int64) int64 {
		k := min(v*N/total, N-1)
		for k+1 < N && total*(k+1)/N <= v {
			k++
		}
		for k > 0 && total*k/N > v {
			k--
		}
		return k
	}
	var shares [][]span
	cur := int64(-1)
	add := func(k int64, sp span) {
		if k != cur || len(shares) == 0 {
			shares = append(shares, nil)
			cur = k
		}
		shares[len(shares)-1] = append(shares[len(shares)-1], sp)
	}
	var base int64
	for o, size := range sizes {
		if size == 0 {
			continue
		}
		if whole[o] {
			add(shareOf(base+size/2), span{obj: o, start: 0, end: size})
			base += size
			continue
		}
		for lo := base; lo < base+size; {
			k := shareOf(lo)
			hi := min(base+size, total*(k+1)/N)
			add(k, span{obj: o, start: lo - base, end: hi - base})
			lo = hi
		}
		base += size
	}
	return shares
}
