package dataset

// The hashing trick: a categorical value is mapped to one of 2^bits slots by
// a 64-bit hash keyed by its column. The hash is FNV-1a over the bytes,
// seeded with the column key, finished with MurmurHash3's fmix64 so that the
// low bits (which the slot keeps) depend on every input bit. It is defined on
// bytes with explicit constants, so it is the same on every platform and in
// every release: changing it changes every cached dataset and model.

const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
	golden    = 0x9E3779B97F4A7C15
)

// DefaultHashBits is the default size of the hashed feature space (2^20).
const DefaultHashBits = 20

// MaxHashBits bounds hash_bits so that slots fit in uint32 with room for
// the numeric slots in front.
const MaxHashBits = 30

// ColumnKey returns the hash key of a column given by position (Criteo).
func ColumnKey(column int) uint64 {
	return Fmix64(fnvOffset ^ (uint64(column)+1)*golden)
}

// NamedColumnKey returns the hash key of a column given by name (CSV).
func NamedColumnKey(name string) uint64 {
	h := uint64(fnvOffset)
	for i := 0; i < len(name); i++ {
		h ^= uint64(name[i])
		h *= fnvPrime
	}
	return Fmix64(h ^ golden)
}

// Hash returns the 64-bit hash of value in the column with the given key.
func Hash(key uint64, value []byte) uint64 {
	h := key
	for _, c := range value {
		h ^= uint64(c)
		h *= fnvPrime
	}
	return Fmix64(h)
}

// Fmix64 is MurmurHash3's 64-bit finaliser. Hashes built on it are frozen:
// changing it changes every hashed feature and every split.
func Fmix64(h uint64) uint64 {
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}
