package executor

// PipelineID is the pipeline's stable ID from its state (see
// state.Store.PipelineID), "" without a state store. Coordinators that leave
// things in shared services namespace them by it.
func (s *stageRun) PipelineID() (string, error) { return s.runner.state.PipelineID() }
