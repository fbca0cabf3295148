// Package gridsearch is the `grid_search` operator: trials of a train stage over a
// grid or a random sample of its arguments, run side by side within a worker
// budget, watched live, stopped early by a rule or killed on request.
//
//	grid_search "tune" {
//	  train        = train.base                       # the base train stage
//	  grid         = { learning_rate = [0.01, 0.1, 1], minibatch = [20, 100] }
//	  random {                                        # and/or
//	    samples = 10
//	    seed    = 1
//	    params  = { l2 = loguniform(1e-6, 1e-2), optimizer = choice(["sgd", "adagrad"]) }
//	  }
//	  metric        = "test_logloss"                  # or accuracy, auc (maximised)
//	  max_parallel  = 3
//	  worker_budget = 6                               # default max_parallel × base workers
//	  early_stop {
//	    rule = "threshold" | "median" | "asha"
//	    grace = "10s"  max_logloss = 2  reduction_factor = 3  interval = "1s"  min_trials = 2
//	  }
//	}
//
// # Trials
//
// A trial's parameters override the base stage's evaluated configuration; grid and
// random keys must be train arguments, and their values are converted and checked
// against the train schema at plan time. The grid is a Cartesian product; with a
// random block too, each grid point is combined with `samples` draws. A trial's ID
// is "t-" and 8 hex digits of the SHA-256 of the canonical encoding of its
// parameters (operators.TrialID), so it does not depend on how the grid is
// written. Each trial is one train.Run inside this stage, named by its ID: its own
// model in psstore, its own waves, its own artifact under the stage's prefix.
//
// Trials run at most max_parallel at once, and only while their workers fit the
// worker budget and, with one evaluator each, the backend's capacity. A trial that
// ends — finished, stopped, killed, failed — frees its workers for queued trials.
//
// # Statuses
//
// A trial's status is an operators.TrialStatus: QUEUED, RUNNING, then DONE (training ended by itself: reason epochs,
// target_logloss, converged or timeout), STOPPED (by a rule; reason "diverged",
// "median rule" or "asha rung K"), KILLED (reason "killed by user") or FAILED (the
// error). A trial that diverges is STOPPED "diverged" whether the threshold rule or
// train itself noticed; it is never a failure of the stage. A FAILED trial does not
// fail the stage either; the stage fails only when no trial left a model that may
// be best.
//
// # Early stopping
//
// threshold stops a trial at an evaluation whose test loss is NaN, infinite or above
// max_logloss (and a trial that ended between evaluations above it is reported as
// diverged). median stops a running trial, past grace, whose best objective so far
// is worse than the median of the other trials' best at the same elapsed time (at
// least min_trials of them). asha is asynchronous successive halving on elapsed
// time: rungs at grace × reduction_factor^k; a trial reaching a rung goes on only if
// it is within the best 1/reduction_factor of those recorded there. The median and
// asha rules are applied every interval; their logic is in rules.go, pure and
// tested on synthetic curves.
//
// # Outputs
//
// best = { id, params, metrics, model } is the trial with the best objective among
// DONE trials and trials STOPPED by the median or asha rule (their metrics are a real
// final evaluation of the model they leave); diverged, killed and failed trials
// never win. trials is the list of every trial's { id, params, status, reason,
// metrics, model }. results = { csv, json } are the URIs of the results table,
// sorted by the objective, which is also printed as the stage's last note.
// Downstream stages use them as grid_search.tune.best.params.learning_rate; at plan
// time these are unknown.
//
// # Events
//
// The stage emits the events of the shared conventions: a trial event
// (operators.TrialEvent, Kind "trial") on every status change and evaluation, with
// the trial's ID, status, parameters, reason, model once it ended with one, whether
// it was reused, and its figures (test_logloss, best_logloss, accuracy, auc,
// iterations, updates_per_second while running, seconds, cost_usd, workers;
// non-finite values are left out); train's Kind "metric" points labelled with the
// trial (operators.TrialLabel); and notes. Commands: "kill" TRIAL and "kill-all".
//
// # Reuse across runs
//
// See cache.go: each finished trial is recorded in the blob store under a key of its
// complete train configuration, so growing the grid trains only the new trials.
package gridsearch
