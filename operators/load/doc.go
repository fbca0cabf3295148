// Package load is the `load` operator: it parses a LIBSVM, Criteo TSV, CSV,
// JSON lines or Parquet input (a file, a directory, a glob or an s3:// URI;
// text formats optionally gzip-, zstd- or bzip2-compressed) in parallel into
// partitions in the run's blob store, with row counts, label balance and
// per-feature statistics, and an account of any bad lines.
//
// # Coordinator
//
//  1. Resolves source and test_source relative to the pipeline directory
//     (blobs.Resolve). A missing or empty input fails the stage here, before
//     any task runs, naming the path.
//  2. When the run's blob store is remote (s3://) and an input is a local
//     file, uploads it to SourcesPrefix + its SHA-256 in the run's store
//     (skipped when already there), so tasks on Lambda read it by URI. Tasks
//     never read a path of the coordinator's machine unless the store is
//     local too.
//  3. Reads the first 64 KiB of every object (sniffAll, 16 at a time) and
//     finds its compression by its magic bytes, never its name: gzip, zstd
//     and bzip2 are read; other content fails the stage before any task runs,
//     saying what the file seems to be and what to do (xz, LZ4, zip, tar,
//     Parquet given as a text format or text as Parquet, UTF-16, binary data
//     at its line and column, JSON lines given as another format).
//  4. For CSV, reads every object's header (they must agree; with header =
//     false, every first line's width) and, unless categorical is set,
//     infers the hashed columns from the first MiB of the first object. For
//     JSON lines, takes the numeric and string keys from the first MiB. For
//     Parquet, reads every file's footer (they must have the same columns)
//     and its row groups, the unit the tasks share (parquet.go).
//  5. Cuts each input into byte ranges (see taskCount and cut in ranges.go:
//     about max(32 MiB, size / (4 × backend slots)) each, or `tasks` of
//     them) and runs one wave, "parse", of one task per range. A compressed
//     object cut into frames that record their sizes (pzstd, bgzip; see
//     dataset.Framing) is cut as a plain one: a range reads the frames that
//     start in it, and the end of its last line from the frames after
//     (dataset.OpenFrames). Any other compressed object cannot be read from
//     the middle, so it is never cut (cutWhole):
//     the shares are filled in object order, a compressed object goes to one
//     share whole, and a share closes at its size. Several compressed files
//     therefore parse in parallel (small ones grouped into one task), while
//     one large compressed file is one task that streams it once into its
//     partitions: its decoder on a goroutine of its own hands chunks of
//     whole lines to parser goroutines on the cores it leaves, and the rows
//     come out in order (dataset.StreamScanner). An input that is one such
//     file whose content size its bytes state (dataset.ContentSize: zstd's
//     frame header, gzip's trailer) gets the plain file's task starts in
//     its content (segment.Cuts, streamCuts): the task starts a piece at
//     each, as the plain file's tasks would, so the dataset has the plain
//     file's partitions, statistics and content digest.
//     Parquet row groups are shared the same way, each whole.
//  6. Merges the tasks' results: bad lines (their object line numbers are the
//     sum of the earlier ranges' line counts plus the line in the range),
//     skipped counts, partitions in input order, statistics. Writes the
//     statistics and manifests under stages/<stage key>/ (see package
//     manifest) and returns the output. When the run has psstore shards
//     and the statistics go through them (operators.ReduceStatsInStore: by
//     default for waves of 64 tasks or more on an s3:// blob store;
//     STRATUS_STATS_REDUCE=psstore|coordinator forces either way), the
//     tasks have already reduced their statistics there
//     (operators.MergeStats: exact, idempotent per task, 2^16 slots a key
//     under a namespace of the stage and run); the coordinator reads the
//     reduced blocks instead of every task's statistics, and deletes them.
//     Without shards, or when the store's reduction is incomplete, it
//     reduces the tasks' blob copies as before, to the same bytes.
//
// # Compressed inputs and the cache key
//
// Rows, statistics and the dataset's content digest of a compressed file are
// those of its decompressed content: a9a.gz loads to the dataset a9a does.
// The stage's cache key is not: the planner digests a source's files as they
// are stored (their bytes and names), so a9a.gz and a9a are different
// sources, and recompressing a file at another level reruns the stage (with
// the same result). The manifest's source records each object's stored size
// and its compression.
//
// # Tasks (load.parse)
//
// A task reads its range with ranged GETs (dataset.OpenRange: a range that
// starts mid-line skips to the next line; its last line is read past the
// range's end), parses it, and writes partitions of partition_bytes under
// its output prefix, train/ and test/, with a statistics object beside each.
// Its result lists the partitions, counts, and the statistics' keys.
//
// # Semantics
//
//   - Output: train and test are operators.DatasetType values (manifest
//     URI, rows, features, partitions); rows is train.rows + test.rows;
//     features is the shared feature space (for libsvm 1 + the largest
//     index seen in either set, or 2^hash_bits when indices are hashed; for
//     criteo 13 + 2^hash_bits; for csv, jsonl and parquet the numeric
//     columns + 2^hash_bits; for ratings 1 + the largest user or item slot).
//   - ratings (dataset.Ratings): user u is slot 2u and item i slot 2i+1, the
//     rating is the label and both entries' value; numeric ids below
//     2^hash_bits are their own ids, others are hashed below it. Each
//     manifest has a ratings summary (users, items, ratings, mean, min, max)
//     read off its statistics (manifest.SummarizeRatings).
//   - Without test_source or split, test is an empty dataset: a manifest with
//     0 rows, no partitions and no source. Consumers check test.rows.
//   - split = { test, seed } sends a row to test when RowHash(seed, row) is
//     below test × 2^64: a hash of the parsed row's content, so the split
//     does not depend on how the input is cut into tasks, and duplicate
//     rows land on the same side. seed defaults to 0. A split that leaves
//     test empty is reported in a note, not an error.
//   - on_error = "fail" (default): the first bad line, in input order, fails
//     the stage with "object:line:column: reason "text": detail". The task
//     that finds it reports it as a result rather than an error, so it is
//     not retried. on_error = "skip": bad lines are counted per reason
//     (dataset.Reason*) in the manifest's source and reported in a note with
//     the first line of each reason.
//   - An input that yields no rows (empty, only comments, every line bad)
//     fails the stage.
//   - The statistics (count/min/max/sum/sumsq per slot) are over each
//     dataset's own rows; normalize uses the train set's.
//   - log1p: criteo applies log(1+max(x,0)) to its integer columns; csv,
//     jsonl and parquet apply sign(x)·log(1+|x|) to their numeric columns.
//   - Parquet rows are numbered from 1 in their file: a bad row fails the
//     stage with "file: row N, column "c": reason", or is skipped and
//     counted with on_error = "skip", as a bad line is.
package load
