// Package dsl parses Stratus pipelines: a directory of *.hcl files declaring
// variables, locals, operator stages, outputs, module calls and a backend.
//
// Loading happens in two steps, in the manner of Terraform's configs and langrefs
// packages. Load parses every file, resolves module calls, and finds each block's
// references statically with Expression.Variables(), before anything is evaluated; the
// result is a Config whose Nodes carry their references, so a planner can build the
// DAG and reject cycles. An Evaluator then evaluates nodes lazily in dependency order,
// with stage outputs supplied by the caller (unknown at plan time, real at apply
// time). Every problem is an hcl.Diagnostic with a source range, and Load reports all
// of them at once.
package dsl
