package main

import (
	"fmt"

	"github.com/stratus-ml/stratus/executor"
	"github.com/stratus-ml/stratus/planner"
	"github.com/stratus-ml/stratus/state"
)

// machineHistory reads this machine's calibration history for a plan
// (planner/calibration_machine.go); a file it cannot read is ignored with a
// note on stderr, never an error.
func (c *cli) machineHistory() *planner.MachineHistory {
	h := planner.LoadMachineHistory(planner.MachineHistoryPath())
	if h.Note != "" {
		fmt.Fprintf(c.stderr, "Note: %s.\n", h.Note)
	}
	return h
}

// machineRecords reads the records of the stages that ran in this apply, for
// foldMachineHistory.
func (c *cli) machineRecords(st *state.Store, sum *executor.Summary) []*state.StageRecord {
	if planner.MachineHistoryPath() == "" || sum == nil || st == nil {
		return nil
	}
	var recs []*state.StageRecord
	for _, s := range sum.Stages {
		if s.Action != "ran" {
			continue
		}
		if r, err := st.Stage(s.Address); err == nil && r != nil {
			recs = append(recs, r)
		}
	}
	return recs
}

// foldMachineHistory adds the runs of the stages that ran in this apply (recs,
// from machineRecords) to the machine's calibration history. A failure is a
// note: the apply succeeded.
func (c *cli) foldMachineHistory(p *planner.Plan, recs []*state.StageRecord) {
	path := planner.MachineHistoryPath()
	if path == "" || len(recs) == 0 {
		return
	}
	note, err := planner.FoldMachineHistory(path, planner.MachineEntries(p, recs))
	if note != "" {
		fmt.Fprintf(c.stderr, "Note: %s.\n", note)
	}
	if err != nil {
		fmt.Fprintf(c.stderr, "Note: this apply's runs were not added to the machine's calibration history: %v.\n", err)
	}
}
