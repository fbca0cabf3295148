# Click-through prediction on Criteo-format data, prepared by the reusable
# criteo-prep module and trained with asynchronous adagrad. The default data is a
# small synthetic sample made with `stratus gen criteo`; point it at real data with
# -var data=PATH (relative to this directory) or an s3:// URI.

variable "data" {
  type    = string
  default = "../../testdata/criteo-synth.tsv"
}

locals {
  # Module arguments are evaluated here but used in the module, so make paths
  # absolute; s3:// URIs pass through.
  data = startswith(var.data, "s3://") || startswith(var.data, "/") ? var.data : "${path.module}/${var.data}"
}

module "prep" {
  source    = "../modules/criteo-prep"
  data      = local.data
  hash_bits = 18
}

train "ctr" {
  input         = module.prep.dataset
  workers       = 1 # 1,800 rows: one worker is the right size, and its runs repeat exactly
  minibatch     = 50
  optimizer     = "adagrad"
  learning_rate = 0.05
  l2            = 0.00001
  epochs        = 10
}

output "rows" {
  value = module.prep.rows
}

output "test_logloss" {
  value = train.ctr.metrics.test_logloss
}
