# Reusable preparation of Criteo-format click logs: parse the TSV (13 integer
# columns, 26 hashed categorical columns), hold out a deterministic test split, and
# scale the integer features to unit variance.

variable "data" {
  type        = string
  description = "Criteo TSV: an absolute path (use path.root or path.module), a glob, or an s3:// URI."
}

variable "hash_bits" {
  type        = number
  default     = 20
  description = "Categorical values are hashed into 2^hash_bits slots."

  validation {
    condition     = var.hash_bits >= 10 && var.hash_bits <= 28
    error_message = "hash_bits must be between 10 and 28."
  }
}

variable "test_fraction" {
  type    = number
  default = 0.1
}

load "clicks" {
  source    = var.data
  format    = "criteo"
  hash_bits = var.hash_bits
  log1p     = true
  on_error  = "skip"
  split     = { test = var.test_fraction, seed = 7 }
}

normalize "clicks" {
  input  = load.clicks
  method = "standard"
}

output "dataset" {
  description = "Train and test sets, normalized."
  value       = normalize.clicks
}

output "rows" {
  value = load.clicks.rows
}
