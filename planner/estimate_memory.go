package planner

import "github.com/stratus-ml/stratus/state"

// recordSeconds is the function-seconds of r's run scaled by work, and their
// GB-seconds at the plan's memory. A record's GB-seconds are its
// function-seconds times the memory it ran with (r.MemoryMB), which
// auto-sizing may have chosen above the default: dividing them by the plan's
// memory instead — before sizeBackend re-prices the estimate at the memory it
// chooses — overstated a 2M-row history by that memory over the default's
// (2368/1769, +34%). A record that does not say its memory is taken to have
// run at the plan's.
func (m *costModel) recordSeconds(r *state.StageRecord, work float64) (fs, gbs float64) {
	mem := m.memoryMB
	if r.MemoryMB > 0 {
		mem = r.MemoryMB
	}
	fs = r.GBSeconds * work * 1024 / float64(mem)
	return fs, fs * float64(m.memoryMB) / 1024
}
