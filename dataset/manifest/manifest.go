// Package manifest describes the datasets Stratus stages produce and
// consume. A dataset (load.x.train, normalize.x.test, …) is a JSON Manifest
// that lists its partitions (dataset/partition objects) in order with their
// row and entry counts, and points at two binary companions: per-feature
// statistics (Stats) and, after normalize, the normalization parameters
// (Affine).
//
// # Where things live
//
// Every key in a manifest is relative to the root of the run's blob store
// (TaskEnv.Blob), which the manifest records as Store:
//
//	stages/<stage key>/train.json             the train Manifest (JSON)
//	stages/<stage key>/train.stats            its Stats ("STRS" binary)
//	stages/<stage key>/test.json, test.stats  the same for the test set
//	stages/<stage key>/normalization.params   normalize: the Affine ("STRA" binary)
//	tasks/<…>/…/part-00000, …                 partitions, written by the stage's tasks
//
// A stage's dataset output value (operators.DatasetType) carries the
// manifest's URI; Open reads it from the run's store.
//
// # Reading a dataset
//
//	m, err := manifest.Open(ctx, st, uri) // st: the run's blob store
//	for _, p := range m.Partitions {      // rows in order
//		part, err := partition.Read(ctx, st, p.Key)
//		…
//	}
//	stats, err := m.ReadStats(ctx, st)    // per-feature count/min/max/sum/sumsq
//	if m.Normalization != nil {
//		params, err := m.ReadParams(ctx, st) // raw features → these features
//	}
//
// A dataset may have no rows (Rows = 0, no partitions): load gives that test
// set when neither test_source nor split is set.
package manifest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/stratus-ml/stratus/blob"
)

// Version is the manifest format version this package writes and reads.
const Version = 1

// Dataset names.
const (
	Train      = "train"
	Test       = "test"
	Validation = "validation"
)

// Datasets are the dataset names in the order stages write them.
var Datasets = []string{Train, Test, Validation}

// Manifest describes one dataset.
type Manifest struct {
	// Version is the format version (Version).
	Version int `json:"version"`
	// Dataset is "train" or "test".
	Dataset string `json:"dataset"`
	// Stage and StageKey identify the stage that wrote it (e.g. load.adult).
	Stage    string `json:"stage"`
	StageKey string `json:"stage_key"`
	// Store is the root URI of the blob store every key below is relative to.
	Store string `json:"store"`

	// Rows, NNZ (stored entries) and the label balance: Positives rows have
	// label 1, Negatives any other (for binary data, 0 or −1).
	Rows      int64 `json:"rows"`
	NNZ       int64 `json:"nnz"`
	Positives int64 `json:"positives"`
	Negatives int64 `json:"negatives"`
	// Labels are the label statistics (nil in manifests written before
	// they were recorded, whose labels are binary): distinct values with
	// counts, range, mean, variance, and the first non-binary label's line.
	Labels *Labels `json:"labels,omitempty"`
	// Features is the size of the feature space: every slot is below it. The
	// train and test sets of one stage share it. For criteo and csv it is the
	// format's full space (numeric slots + 2^hash_bits); for libsvm, 1 + the
	// largest slot in either set.
	Features int `json:"features"`

	// Partitions hold the rows, in order: for load, the order of the input
	// (objects in key order, lines in file order).
	Partitions []Partition `json:"partitions"`
	// PartitionBytes is the target partition size the writer used.
	PartitionBytes int `json:"partition_bytes"`

	// Stats is the key of the per-feature statistics of this dataset's rows
	// ("" when Rows = 0); StatsDigest is the SHA-256 of that object.
	Stats       string `json:"stats,omitempty"`
	StatsDigest string `json:"stats_digest,omitempty"`

	// Format says how the input was parsed into slots; predict needs it to
	// read new data the same way.
	Format Format `json:"format"`
	// Source is the input the rows were read from (nil for a test set that
	// does not exist). With a split, train and test share it.
	Source *Source `json:"source,omitempty"`
	// Split is set when the rows are one side of a hash split.
	Split *Split `json:"split,omitempty"`
	// Normalization is set by normalize.
	Normalization *Normalization `json:"normalization,omitempty"`
	// Ratings summarises a ratings dataset (format "ratings"; ratings.go).
	Ratings *RatingsSummary `json:"ratings,omitempty"`

	// Digest identifies the content: a SHA-256 over the counts, each
	// partition's rows, entries, size and CRC-32C in order, and the digests
	// of the statistics and parameters (see ContentDigest). Two manifests
	// with equal digests describe the same rows, whatever their keys.
	Digest string `json:"digest"`
}

// Partition is one partition object of a dataset.
type Partition struct {
	Key      string `json:"key"`      // relative to Manifest.Store
	Rows     int    `json:"rows"`     //
	NNZ      int    `json:"nnz"`      // stored entries
	Bytes    int    `json:"bytes"`    // object size
	Features int    `json:"features"` // 1 + the largest slot in it (0 if no entries)
	CRC32C   uint32 `json:"crc32c"`   // the checksum in its header
}

// Format records how text was turned into slots (see package dataset).
type Format struct {
	// Name is "libsvm", "criteo", "csv", "jsonl", "parquet" or "ratings".
	Name string `json:"name"`
	// HashBits is the hashed space's size, 2^HashBits slots starting at slot
	// HashOffset (criteo: 13; csv, jsonl, parquet: the number of numeric
	// columns), whose values are counts of hashed categories. 0 for libsvm.
	// Hash names the hash function (HashName, IndexHashName).
	HashBits int `json:"hash_bits,omitempty"`
	// IndexHashBits: libsvm indices were hashed into 2^IndexHashBits slots
	// (Hash is IndexHashName); the slots hold the features' values, numeric
	// like any libsvm feature.
	IndexHashBits int    `json:"index_hash_bits,omitempty"`
	HashOffset    int    `json:"hash_offset,omitempty"`
	Hash          string `json:"hash,omitempty"`
	// Log1p: numeric columns were transformed (criteo: log(1+max(x,0));
	// csv: sign(x)·log(1+|x|)).
	Log1p bool `json:"log1p,omitempty"`
	// CSV and JSON lines: the label column, the header's columns (CSV), the
	// numeric columns (the i-th is slot i), the hashed (categorical) columns
	// and ignored ones. JSON lines also hash a string under a key in no list.
	Label       string   `json:"label,omitempty"`
	Columns     []string `json:"columns,omitempty"`
	Numeric     []string `json:"numeric,omitempty"`
	Categorical []string `json:"categorical,omitempty"`
	Ignore      []string `json:"ignore,omitempty"`
	// CSV: the field delimiter ("" for a comma), and NoHeader for files
	// without a header line, whose Columns are their positions "0", "1"...
	Delimiter string `json:"delimiter,omitempty"`
	NoHeader  bool   `json:"no_header,omitempty"`
}

// HashName is the Format.Hash of dataset.Hash: FNV-1a keyed by column,
// finished with MurmurHash3's fmix64, low bits kept.
const HashName = "fnv1a64-fmix64"

// IndexHashName is the Format.Hash of hashed LIBSVM indices: fmix64 of the
// index XOR dataset.LIBSVMHashKey, low bits kept.
const IndexHashName = "libsvm-index-fmix64"

// Source is the input a dataset was read from.
type Source struct {
	// Spec is the source as the pipeline wrote it (a path, glob or URI).
	Spec    string   `json:"spec"`
	Objects []Object `json:"objects"`
	Bytes   int64    `json:"bytes"`
	// Lines read: rows, blank, comment, header and bad lines.
	Lines int64 `json:"lines"`
	// Skipped counts the bad lines skipped (on_error = "skip") per reason
	// (the dataset.Reason* strings).
	Skipped map[string]int64 `json:"skipped,omitempty"`
}

// SkippedLines returns the total of Skipped.
func (s *Source) SkippedLines() int64 {
	var n int64
	for _, c := range s.Skipped {
		n += c
	}
	return n
}

// Object is one input object.
type Object struct {
	// Name is the object as the user knows it: a path relative to the
	// pipeline directory, or a URI.
	Name string `json:"name"`
	// URI is where the tasks read it: Name's URI, or its content-addressed
	// copy in the run's store when a local file was uploaded for a remote
	// backend.
	URI  string `json:"uri"`
	Size int64  `json:"size"` // as stored (compressed, if it is)
	ETag string `json:"etag,omitempty"`
	// Compression is the codec the object's content was decompressed with
	// (found by its magic bytes): "gzip", "zstd", "bzip2", or "" for none.
	Compression string `json:"compression,omitempty"`
}

// Split describes a deterministic hash split of one source into train, test
// and validation: a row goes to test when the hash of its content with Seed,
// as a fraction of 2^64, is below Test, to validation when it is below
// Test+Validation, else to train (see Hash).
type Split struct {
	Test       float64 `json:"test"`
	Validation float64 `json:"validation,omitempty"`
	Seed       int64   `json:"seed"`
	Hash       string  `json:"hash"`
}

// Normalization records what normalize did.
type Normalization struct {
	// Method is "min_max" or "standard".
	Method string `json:"method"`
	// Range is min_max's target interval.
	Range []float64 `json:"range,omitempty"`
	// Center is standard's center argument.
	Center bool `json:"center,omitempty"`
	// Params is the key of the Affine that maps the raw slots (as Format
	// parses them) to this dataset's values, composed with any earlier
	// normalization; ParamsDigest is its SHA-256.
	Params       string `json:"params"`
	ParamsDigest string `json:"params_digest"`
	// Input is the URI of the manifest that was normalized, and StatsFrom
	// the URI of the train manifest whose statistics gave the parameters.
	Input     string `json:"input"`
	StatsFrom string `json:"stats_from"`
	// Densified counts the slots whose implicit zero maps to a non-zero
	// value: every row stores an entry for them.
	Densified int `json:"densified,omitempty"`
}

// Key returns the key of a stage's object name: "stages/<stageKey>/<name>".
func Key(stageKey, name string) string { return "stages/" + stageKey + "/" + name }

// ContentDigest computes m's Digest from its content (see Manifest.Digest).
func (m *Manifest) ContentDigest() string {
	h := sha256.New()
	fmt.Fprintf(h, "stratus-dataset v%d\nrows %d nnz %d features %d positives %d\n", Version, m.Rows, m.NNZ, m.Features, m.Positives)
	for _, p := range m.Partitions {
		fmt.Fprintf(h, "part %d %d %d %08x\n", p.Rows, p.NNZ, p.Bytes, p.CRC32C)
	}
	fmt.Fprintf(h, "stats %s\n", m.StatsDigest)
	if n := m.Normalization; n != nil {
		fmt.Fprintf(h, "params %s\n", n.ParamsDigest)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Check verifies the manifest's internal consistency — version, counts that
// add up, the digest — and returns an error wrapping ErrCorrupt if not.
func (m *Manifest) Check() error {
	if m.Version != Version {
		return fmt.Errorf("%w: manifest version %d is not supported (this build reads version %d): rerun the stage that wrote it", ErrCorrupt, m.Version, Version)
	}
	var rows, nnz int64
	for _, p := range m.Partitions {
		if p.Key == "" || p.Rows <= 0 || p.NNZ < 0 || p.Features > m.Features {
			return fmt.Errorf("%w: partition %q: %d rows, %d entries, %d features of %d", ErrCorrupt, p.Key, p.Rows, p.NNZ, p.Features, m.Features)
		}
		rows += int64(p.Rows)
		nnz += int64(p.NNZ)
	}
	if rows != m.Rows || nnz != m.NNZ {
		return fmt.Errorf("%w: partitions hold %d rows and %d entries, the manifest says %d and %d", ErrCorrupt, rows, nnz, m.Rows, m.NNZ)
	}
	if m.Positives < 0 || m.Negatives < 0 || m.Positives+m.Negatives != m.Rows {
		return fmt.Errorf("%w: %d positives and %d negatives for %d rows", ErrCorrupt, m.Positives, m.Negatives, m.Rows)
	}
	if m.Rows > 0 && m.Stats == "" {
		return fmt.Errorf("%w: no statistics for %d rows", ErrCorrupt, m.Rows)
	}
	if d := m.ContentDigest(); d != m.Digest {
		return fmt.Errorf("%w: manifest digest %s does not match its content (%s)", ErrCorrupt, m.Digest, d)
	}
	return nil
}

// Write sets m's Version and Digest, stores it as JSON at key and returns
// its URI.
func Write(ctx context.Context, st blob.Store, key string, m *Manifest) (string, error) {
	m.Version = Version
	if m.Partitions == nil {
		m.Partitions = []Partition{}
	}
	m.Digest = m.ContentDigest()
	data, err := json.MarshalIndent(m, "", " ")
	if err != nil {
		return "", fmt.Errorf("encode manifest: %w", err)
	}
	if err := putObject(ctx, st, key, append(data, '\n')); err != nil {
		return "", err
	}
	return st.URI(key), nil
}

// Read reads the manifest at key and checks it (Check); errors name the
// object.
func Read(ctx context.Context, st blob.Store, key string) (*Manifest, error) {
	data, err := getObject(ctx, st, key)
	if err != nil {
		return nil, err
	}
	var m Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("manifest %s: %w: %v", st.URI(key), ErrCorrupt, err)
	}
	if err := m.Check(); err != nil {
		return nil, fmt.Errorf("manifest %s: %w", st.URI(key), err)
	}
	return &m, nil
}

// Open reads the manifest at uri, which must be in st (the run's blob
// store): the URI a dataset output value carries.
func Open(ctx context.Context, st blob.Store, uri string) (*Manifest, error) {
	key, err := KeyOf(st, uri)
	if err != nil {
		return nil, err
	}
	return Read(ctx, st, key)
}

// KeyOf returns the key of uri in st, or an error when uri is not in st.
func KeyOf(st blob.Store, uri string) (string, error) {
	root := strings.TrimSuffix(st.URI(""), "/") + "/"
	if key, ok := strings.CutPrefix(uri, root); ok && key != "" {
		return key, nil
	}
	return "", fmt.Errorf("dataset %s is not in this run's blob store (%s): it was produced by a run with another blob store; run its stage again (stratus state rm, then apply)", uri, root)
}

// ReadStats reads the dataset's statistics and checks their digest. A
// dataset without rows has empty statistics.
func (m *Manifest) ReadStats(ctx context.Context, st blob.Store) (*Stats, error) {
	if m.Stats == "" {
		return NewStats(), nil
	}
	data, err := getObject(ctx, st, m.Stats)
	if err != nil {
		return nil, err
	}
	if d := sha256Hex(data); d != m.StatsDigest {
		return nil, fmt.Errorf("statistics %s: %w: SHA-256 %s, the manifest says %s: rerun the stage that wrote it", st.URI(m.Stats), ErrCorrupt, d, m.StatsDigest)
	}
	s, err := DecodeStats(data)
	if err != nil {
		return nil, fmt.Errorf("statistics %s: %w", st.URI(m.Stats), err)
	}
	if s.Rows != m.Rows {
		return nil, fmt.Errorf("statistics %s: %w: over %d rows, the dataset has %d", st.URI(m.Stats), ErrCorrupt, s.Rows, m.Rows)
	}
	return s, nil
}

// ReadParams reads the normalization parameters (nil, nil when the dataset
// is not normalized) and checks their digest.
func (m *Manifest) ReadParams(ctx context.Context, st blob.Store) (*Affine, error) {
	n := m.Normalization
	if n == nil {
		return nil, nil
	}
	data, err := getObject(ctx, st, n.Params)
	if err != nil {
		return nil, err
	}
	if d := sha256Hex(data); d != n.ParamsDigest {
		return nil, fmt.Errorf("normalization parameters %s: %w: SHA-256 %s, the manifest says %s", st.URI(n.Params), ErrCorrupt, d, n.ParamsDigest)
	}
	a, err := DecodeAffine(data)
	if err != nil {
		return nil, fmt.Errorf("normalization parameters %s: %w", st.URI(n.Params), err)
	}
	return a, nil
}

// PutStats encodes s, stores it at key and records it (key and digest) in m.
func (m *Manifest) PutStats(ctx context.Context, st blob.Store, key string, s *Stats) error {
	data, err := s.MarshalBinary()
	if err != nil {
		return err
	}
	if err := putObject(ctx, st, key, data); err != nil {
		return err
	}
	m.Stats, m.StatsDigest = key, sha256Hex(data)
	return nil
}

// PutParams encodes a, stores it at key and returns its digest (for
// Normalization.ParamsDigest).
func PutParams(ctx context.Context, st blob.Store, key string, a *Affine) (string, error) {
	data, err := a.MarshalBinary()
	if err != nil {
		return "", err
	}
	if err := putObject(ctx, st, key, data); err != nil {
		return "", err
	}
	return sha256Hex(data), nil
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
