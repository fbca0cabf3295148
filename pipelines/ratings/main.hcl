# Collaborative filtering: a matrix factorization of generated rank-3 ratings
# (testdata/ratings-synth.csv: 150 users × 100 items, 6,000 ratings, noise σ =
# 0.25, the noise floor), split into training, validation and test ratings,
# trained with the defaults (alternating least squares, each half-step a wave of
# functions over ranges of users or items) and scored on the test ratings.

load "r" {
  source = "../../testdata/ratings-synth.csv"
  format = "ratings"
  split  = { test = 0.2, validation = 0.1, seed = 1 }
}

train "mf" {
  input = load.r
  model = "matrix_factorization"
  rank  = 3
}

output "test_rmse" {
  description = "RMSE on the test ratings."
  value       = train.mf.metrics.test_rmse
}

output "validation_rmse" {
  value = train.mf.metrics.validation_rmse
}

output "model" {
  value = train.mf.model
}
