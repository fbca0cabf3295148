// Package partition defines Stratus's binary sparse-row partition: the
// object that load writes and training reads, sized for one GET (about
// 4 MiB by default), decoded without copying and sliced into minibatches
// that are views into the one buffer.
//
// # Layout (version 1, little-endian)
//
//	offset size
//	0      4    magic "STRP"
//	4      2    version (1)
//	6      2    flags: bit 0 = every value is 1 (the values section is omitted)
//	8      1    index width in bytes: 2 (all slots < 65536) or 4
//	9      3    reserved, zero
//	12     4    CRC-32C (Castagnoli) of every byte of the object except these 4
//	16     8    rows
//	24     8    nnz (stored entries)
//	32     4    features: 1 + the largest slot (0 when nnz = 0)
//	36     4    reserved, zero
//	40          labels:  rows × float32
//	            offsets: (rows+1) × uint32; row i is entries [offsets[i], offsets[i+1])
//	            indices: nnz × width bytes, zero-padded to a multiple of 4
//	            values:  nnz × float32 (absent when flag bit 0 is set)
//
// Every section starts at a multiple of 4, so a little-endian machine views
// them in place. Within a row, indices are strictly increasing.
package partition

import (
	"errors"
	"hash/crc32"
	"unsafe"
)

const (
	magic      = "STRP"
	version    = 1
	headerSize = 40
	crcOffset  = 12 // the CRC-32C field (see the layout above)

	flagAllOnes = 1 << 0
	knownFlags  = flagAllOnes
)

// DefaultTarget is the default partition size in bytes.
const DefaultTarget = 4 << 20

// ErrCorrupt is wrapped by every error about a malformed, truncated or
// corrupted partition.
var ErrCorrupt = errors.New("corrupt partition")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// littleEndian reports whether this machine stores integers little-endian,
// which lets sections be viewed in place.
var littleEndian = func() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}()

func pad4(n int) int { return (n + 3) &^ 3 }

// encodedSize returns the size of a partition with these counts.
func encodedSize(rows, nnz, width int, allOnes bool) int {
	n := headerSize + 4*rows + 4*(rows+1) + pad4(nnz*width)
	if !allOnes {
		n += 4 * nnz
	}
	return n
}

// checksum computes the CRC over data except the CRC field.
func checksum(data []byte) uint32 {
	c := crc32.Update(0, castagnoli, data[:crcOffset])
	return crc32.Update(c, castagnoli, data[crcOffset+4:])
}
