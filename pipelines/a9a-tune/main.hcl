# Hyperparameter search on a9a: a grid over learning rate and minibatch size around a
# base train stage, stopping trials that diverge, then a final model trained with the
# best parameters found.
#
#   stratus apply pipelines/a9a-tune             # a live table of the trials
#   stratus plot grid_search.tune -o tune.png -dir pipelines/a9a-tune
#
# Trials last a few seconds each (50 epochs, evaluated every 200ms), long enough to
# watch them and to kill one. The learning rate of 50 diverges: the threshold rule
# stops it as soon as its test loss passes 1.

load "adult" {
  source      = "../../testdata/a9a"
  test_source = "../../testdata/a9a.t"
  format      = "libsvm"
}

normalize "adult" {
  input  = load.adult
  method = "min_max"
}

train "base" {
  input         = normalize.adult
  workers       = 2
  minibatch     = 100
  optimizer     = "adagrad"
  learning_rate = 0.1
  l2            = 0.0001
  epochs        = 50
  eval_interval = "200ms"
}

grid_search "tune" {
  train = train.base
  grid = {
    learning_rate = [0.01, 0.1, 0.5, 50]
    minibatch     = [20, 100]
  }
  metric       = "test_logloss"
  max_parallel = 3

  early_stop {
    rule        = "threshold"
    max_logloss = 1
  }
}

train "final" {
  input         = normalize.adult
  workers       = 4
  minibatch     = grid_search.tune.best.params.minibatch
  optimizer     = "adagrad"
  learning_rate = grid_search.tune.best.params.learning_rate
  l2            = 0.0001
  epochs        = 30
}

output "best_params" {
  value = grid_search.tune.best.params
}

output "best_logloss" {
  value = grid_search.tune.best.metrics.test_logloss
}

output "final_logloss" {
  value = train.final.metrics.test_logloss
}
