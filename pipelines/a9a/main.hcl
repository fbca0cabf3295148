# Logistic regression on the UCI Adult census data (LIBSVM's a9a): load the train
# and test files, scale features to [0, 1], and train with asynchronous adagrad on
# four worker functions. liblinear (-s 0 -c 0.1) reaches test logloss 0.3237 and
# accuracy 0.8504 on a9a.t.

variable "learning_rate" {
  type        = number
  default     = 0.1
  description = "Adagrad step size."

  validation {
    condition     = var.learning_rate > 0
    error_message = "The learning rate must be positive."
  }
}

variable "workers" {
  type        = number
  default     = 4
  description = "Concurrent worker functions."
}

load "adult" {
  source      = "../../testdata/a9a"
  test_source = "../../testdata/a9a.t"
  format      = "libsvm"
}

normalize "adult" {
  input  = load.adult
  method = "min_max"
}

train "lr" {
  input         = normalize.adult
  model         = "logistic_regression"
  workers       = var.workers
  minibatch     = 100
  optimizer     = "adagrad"
  learning_rate = var.learning_rate
  l2            = 0.0001
  epochs        = 5
  eval_interval = "50ms"
}

output "test_logloss" {
  description = "Log loss on a9a.t."
  value       = train.lr.metrics.test_logloss
}

output "accuracy" {
  value = train.lr.metrics.accuracy
}

output "model" {
  value = train.lr.model
}
