package planner

import (
	"context"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
)

func buildWith(t *testing.T, dir string, st StateReader, opts Options) (*Plan, hcl.Diagnostics) {
	t.Helper()
	opts.State = st
	return Build(context.Background(), load(t, dir), opts)
}

// -replace reruns a cached stage with the reason "-replace"; its key does not
// change, so its dependents stay cached.
func TestReplace(t *testing.T) {
	dir := pipelineDir(t, withData(map[string]string{"main.hcl": basePipeline}))
	st := openState(t)
	before := plan(t, load(t, dir), st)
	recordApply(t, st, before)
	p, diags := buildWith(t, dir, st, Options{Replace: []string{"normalize.adult"}})
	if diags.HasErrors() {
		t.Fatal(diagText(p.Config, diags))
	}
	got := actions(p)
	if got["normalize.adult"] != "rerun: -replace" || !p.Stage("normalize.adult").Replaced {
		t.Errorf("normalize.adult: %q", got["normalize.adult"])
	}
	for addr, a := range got {
		if addr != "normalize.adult" && a != "cached" {
			t.Errorf("%s: %q, want cached", addr, a)
		}
	}
	if keys(p)["normalize.adult"] != keys(before)["normalize.adult"] {
		t.Error("-replace changed the stage's key")
	}
	// On a stage that never ran, -replace changes nothing.
	p, diags = buildWith(t, dir, nil, Options{Replace: []string{"normalize.adult"}})
	if diags.HasErrors() || actions(p)["normalize.adult"] != "run: never ran" {
		t.Errorf("fresh -replace: %v %v", actions(p), diags)
	}
}

// -target keeps the stage and its upstream stages, in order, with a warning.
func TestTarget(t *testing.T) {
	dir := pipelineDir(t, withData(map[string]string{"main.hcl": basePipeline}))
	p, diags := buildWith(t, dir, nil, Options{Target: []string{"train.base"}})
	if diags.HasErrors() {
		t.Fatal(diagText(p.Config, diags))
	}
	var addrs []string
	for _, s := range p.Stages {
		addrs = append(addrs, s.Address)
	}
	if got := strings.Join(addrs, " "); got != "load.adult normalize.adult train.base" {
		t.Errorf("targeted stages = %s", got)
	}
	if len(diags) != 1 || diags[0].Severity != hcl.DiagWarning || diags[0].Summary != TargetWarning {
		t.Errorf("diags = %v, want the targeting warning", diags)
	}
	if strings.Join(p.Targets, ",") != "train.base" {
		t.Errorf("Targets = %v", p.Targets)
	}
}

// An unknown address is an error that names the closest stage; no warning.
func TestSelectionUnknownAddress(t *testing.T) {
	dir := pipelineDir(t, withData(map[string]string{"main.hcl": basePipeline}))
	for _, tc := range []struct {
		opts Options
		want string
	}{
		{Options{Target: []string{"train.bse"}}, "-target=train.bse: the pipeline has no stage or module train.bse. Did you mean train.base?"},
		{Options{Replace: []string{"grid_search.tun"}}, "-replace=grid_search.tun: the pipeline has no stage or module grid_search.tun. Did you mean grid_search.tune?"},
		{Options{Target: []string{"module.nope"}}, "-target=module.nope: the pipeline has no stage or module module.nope. Its stages are: grid_search.tune, load.adult, load.other, normalize.adult, train.base, train.final, train.other."},
	} {
		p, diags := buildWith(t, dir, nil, tc.opts)
		if p != nil || len(diags) != 1 || diags[0].Severity != hcl.DiagError || !strings.HasPrefix(diags[0].Detail, tc.want) {
			t.Errorf("%+v: plan %v, diags %v; want the error %q", tc.opts, p != nil, diags, tc.want)
		}
	}
}
