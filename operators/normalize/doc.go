// Package normalize is the `normalize` operator: min-max or z-score scaling
// of a dataset's features, with parameters computed from the statistics load
// recorded for the train set (no pass over the data to compute them), then
// applied to train and test in one wave of tasks that rewrite the
// partitions.
//
// # Semantics
//
// Statistics count the implicit zero of every row that stores no entry for
// a feature (see manifest.Feature.Moments):
//
//   - min_max maps [min, max] to range = [lo, hi] (default [0, 1]):
//     x ↦ lo + (x − min)·(hi − lo)/(max − min).
//   - standard maps x ↦ x/σ (sparse zeros stay zero), or (x − μ)/σ with
//     center = true; σ is the population standard deviation.
//   - Features with an empty range or zero variance (constants), and features
//     the train set never stores, are left unchanged.
//   - When a feature's zero maps to a non-zero value (min_max with lo ≠ 0 or
//     with negative values; standard with center), every row gets an entry
//     for it ("densified"). The stage refuses to add more than MaxDensified
//     entries that way, before any task runs.
//   - The test set is scaled with the train set's parameters.
//
// The output manifests record the parameters as a manifest.Affine that maps
// the raw slots (as load parsed them) to the output values — composed with
// the input's own normalization when normalizing a normalized dataset — so
// model export and predict can apply the same transformation
// (manifest.Transformer). Output statistics are recomputed from the output
// rows by the tasks.
//
// # Tasks (normalize.scale)
//
// Each task rescales a run of consecutive partitions of one dataset (about
// TasksPerSlot tasks per backend slot), checking each partition's CRC: a
// damaged partition fails the task with the object's URI.
package normalize
