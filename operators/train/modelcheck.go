package train

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/zclconf/go-cty/cty"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/stratus-ml/stratus/operators"
	"github.com/stratus-ml/stratus/psstore"
)

// The model's lifecycle in psstore, and the checks that keep a run from
// exporting (or resuming) a model whose shards' slices come from different
// points of the run.
//
// A run's model is named train/<pipeline>/<stage>/<key>[/<trial>]: the
// pipeline's stable ID (from its state), the stage address and 16 hex
// digits of the cache key, so two pipelines with the same configuration on
// one cluster never share or reset each other's model. Its control keys
// live under ctl/<model>/ and its run record under run/<model>.
//
// The run record, written before any worker starts, holds the run's
// generation and each shard's incarnation of the slice (psstore draws one
// when it creates a slice). Every shard keeps per-slice update counters
// with the slice and in its checkpoints, and flags a slice that came back
// from a checkpoint older than updates it had acknowledged (ModelStats.Lost).
// So:
//   - while training, the coordinator and the evaluator watch the counters:
//     a slice that lost updates, was created again, or whose counter went
//     backwards fails the run loudly;
//   - before export, the coordinator checks the same once more;
//   - a resumed run (after an interrupted apply) resumes only a model that
//     matches its record; otherwise it trains again from the start as the
//     next generation, whose waves have names of their own so that no task
//     of the abandoned generation counts as done.
//
// When the model is exported it is deleted from psstore with its control
// keys and record, unless the stage sets keep_model.

// ErrClusterFull is matched (errors.Is) by a run's error when psstore had no
// room for its model (too many models, or too little memory on a shard).
// It is the cluster's problem, not the trial's: grid_search fails the stage.
var ErrClusterFull = errors.New("psstore cluster is full")

// pipelineIdentified is a Stage that knows its pipeline's stable ID.
type pipelineIdentified interface {
	PipelineID() (string, error)
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9_.\-\[\]]+`)

// modelName is the psstore name of a run's model.
func modelName(s operators.Stage, trial string) (string, error) {
	pid := ""
	if p, ok := s.(pipelineIdentified); ok {
		id, err := p.PipelineID()
		if err != nil {
			return "", err
		}
		pid = id
	}
	return ModelName(pid, s.Address(), s.Key(), trial), nil
}

// ModelName is the psstore name of the model a train stage (or a grid_search
// trial of one) trains: namespaced by the pipeline's stable ID and the stage's
// address, then the cache key's first 16 hex digits, so two pipelines on one
// cluster never share a model. `stratus destroy` finds kept models by it.
func ModelName(pipelineID, address, key, trial string) string {
	if pipelineID == "" {
		pipelineID = "none"
	}
	name := "train/" + pipelineID + "/" + unsafeName.ReplaceAllString(address, "_") + "/" + key[:min(16, len(key))]
	if trial != "" {
		name += "/" + trial
	}
	return name
}

// genWave is the name of a wave in run generation gen.
func genWave(base string, gen int) string {
	if gen == 0 {
		return base
	}
	return fmt.Sprintf("%s~%d", base, gen)
}

// runRecord is what a run records of its model before the workers start.
type runRecord struct {
	Gen int `json:"gen"`
	// Copies maps "<partition>/<copy>" to the incarnation of that slice
	// (copy 0 is the primary; more with replication).
	Copies  map[string]uint64 `json:"copies"`
	Created string            `json:"created"`
}

func copyID(partition, copy int) string { return fmt.Sprintf("%d/%d", partition, copy) }

func runKey(model string) string { return "run/" + model }

// modelCheck watches one run's model.
type modelCheck struct {
	ps    *psstore.Client
	model string
	rec   runRecord

	mu       sync.Mutex
	last     map[string]uint64 // updates last seen, by copyID
	lastSeen time.Time
}

// prepareModel readies the model for a run and returns its check and the
// run generation: it resumes the model of an interrupted run of the same
// generation when that model matches the run's record, and otherwise
// (re)creates it from scratch, resetting the control keys either way.
func prepareModel(ctx context.Context, s operators.Stage, ps *psstore.Client, ctl control, spec psstore.ModelSpec, workersWave string, labels map[string]string) (*modelCheck, int, error) {
	mc := &modelCheck{ps: ps, model: spec.Name}
	var rec runRecord
	found := false
	b, err := ps.Get(ctx, runKey(spec.Name))
	switch {
	case err == nil:
		if json.Unmarshal(b, &rec) == nil {
			found = true
		}
	case !errors.Is(err, psstore.ErrNotFound):
		return nil, 0, fmt.Errorf("read the run record of model %s: %w", spec.Name, err)
	}
	gen := rec.Gen
	if !found {
		// No record (a first run, or the record was lost): start after every
		// generation an earlier run left tasks of.
		for gen = 0; gen < 1000; gen++ {
			n, err := s.Recorded(genWave(workersWave, gen))
			if err != nil {
				return nil, 0, err
			}
			if n == 0 {
				break
			}
		}
		return mc, gen, mc.fresh(ctx, ctl, spec, gen)
	}
	n, err := s.Recorded(genWave(workersWave, gen))
	if err != nil {
		return nil, 0, err
	}
	if n == 0 {
		return mc, gen, mc.fresh(ctx, ctl, spec, gen)
	}
	mc.rec = rec
	if why := mc.mismatch(ctx); why != "" {
		s.Event(operators.Event{Kind: "note", Labels: labels, Note: fmt.Sprintf("not resuming the interrupted training: %s; training again from the start", why)})
		return mc, gen + 1, mc.fresh(ctx, ctl, spec, gen+1)
	}
	if err := ctl.reset(ctx); err != nil {
		return nil, 0, fmt.Errorf("reset training control: %w", err)
	}
	return mc, gen, nil
}

// fresh deletes whatever an earlier run left of the model, creates it and
// records its identity as generation gen.
func (mc *modelCheck) fresh(ctx context.Context, ctl control, spec psstore.ModelSpec, gen int) error {
	if err := mc.ps.DeleteModel(ctx, spec.Name); err != nil {
		return fmt.Errorf("reset model: %w", err)
	}
	if err := ctl.reset(ctx); err != nil {
		return fmt.Errorf("reset training control: %w", err)
	}
	if err := mc.ps.CreateModel(ctx, spec); err != nil {
		if status.Code(err) == codes.ResourceExhausted {
			return fmt.Errorf("create model: %w (%w)", err, ErrClusterFull)
		}
		return fmt.Errorf("create model: %w", err)
	}
	models, err := mc.ps.ListModels(ctx, spec.Name)
	if err != nil {
		return fmt.Errorf("read the new model's identity: %w", err)
	}
	mc.rec = runRecord{Gen: gen, Created: time.Now().UTC().Format(time.RFC3339), Copies: map[string]uint64{}}
	for _, m := range models {
		if m.Name != spec.Name {
			continue
		}
		for _, sh := range m.Shards {
			mc.rec.Copies[copyID(sh.Partition, sh.Copy)] = sh.Incarnation
		}
	}
	b, _ := json.Marshal(mc.rec)
	if err := mc.ps.Put(ctx, runKey(spec.Name), b); err != nil {
		return fmt.Errorf("record the model's identity: %w", err)
	}
	mc.last = nil
	return nil
}

// mismatch says how the model in psstore differs from the run's record, or
// "" if it is the recorded model with no lost updates.
func (mc *modelCheck) mismatch(ctx context.Context) string {
	st, err := mc.ps.ModelStats(ctx, mc.model)
	if err != nil {
		if errors.Is(err, psstore.ErrNotFound) {
			return fmt.Sprintf("model %s is gone from psstore (%v)", mc.model, err)
		}
		return fmt.Sprintf("model %s cannot be read (%v)", mc.model, err)
	}
	return mc.compare(st)
}

// compare checks stats against the record and the counters seen so far.
func (mc *modelCheck) compare(st psstore.ModelStats) string {
	if st.Lost != "" {
		return fmt.Sprintf("model %s lost updates: %s", mc.model, st.Lost)
	}
	for _, sh := range st.Shards {
		if inc, ok := mc.rec.Copies[copyID(sh.Partition, sh.Copy)]; !ok || inc != sh.Incarnation {
			return fmt.Sprintf("model %s on shard %d (%s) is not the one this run created (it was deleted and created again, or the shard lost its data)", mc.model, sh.Shard, sh.Addr)
		}
	}
	mc.mu.Lock()
	defer mc.mu.Unlock()
	if mc.last == nil {
		mc.last = map[string]uint64{}
	}
	for _, sh := range st.Shards {
		id := copyID(sh.Partition, sh.Copy)
		if last, ok := mc.last[id]; ok && sh.Updates < last {
			return fmt.Sprintf("model %s on shard %d (%s) went back from %d to %d updates", mc.model, sh.Shard, sh.Addr, last, sh.Updates)
		}
		mc.last[id] = sh.Updates
	}
	return ""
}

// watchEvery is how often the coordinator checks the model while training.
const watchEvery = time.Second

// watch checks the model at most once per watchEvery; it returns an error
// when the model no longer matches its run. A model it cannot read is not
// an error here (the workers and the evaluator report that).
func (mc *modelCheck) watch(ctx context.Context) error {
	if time.Since(mc.lastSeen) < watchEvery {
		return nil
	}
	mc.lastSeen = time.Now()
	st, err := mc.ps.ModelStats(ctx, mc.model)
	if err != nil {
		if errors.Is(err, psstore.ErrNotFound) {
			return mc.broken(fmt.Sprintf("model %s is gone from psstore", mc.model))
		}
		return nil
	}
	if why := mc.compare(st); why != "" {
		return mc.broken(why)
	}
	return nil
}

// verify checks the model once more before it is exported.
func (mc *modelCheck) verify(ctx context.Context) error {
	if why := mc.mismatch(ctx); why != "" {
		return mc.broken(why)
	}
	return nil
}

func (mc *modelCheck) broken(why string) error {
	return fmt.Errorf("%s, so its shards no longer hold one consistent model and it is not exported: run `stratus apply` again, and the stage trains again from the start (%w)", why, psstore.ErrModelLost)
}

// explain turns a run's failure into the model's own problem when the
// model is what broke (a worker's broken push stream is the symptom of a
// shard that died).
func (mc *modelCheck) explain(ctx context.Context, failure error) error {
	if errors.Is(failure, psstore.ErrModelLost) || ctx.Err() != nil {
		return failure
	}
	why := mc.mismatch(context.WithoutCancel(ctx))
	if why == "" || strings.Contains(why, "cannot be read") {
		return failure
	}
	return fmt.Errorf("%w\n(first failure: %v)", mc.broken(why), failure)
}

// cleanup deletes the model, its control keys and its record from psstore,
// unless keep is set (then only the control keys go). Failures are notes,
// not errors: the model was exported already, and `stratus psstore gc`
// removes what is left.
func (mc *modelCheck) cleanup(ctx context.Context, s operators.Stage, ctl control, keep bool, labels map[string]string) {
	ctx = context.WithoutCancel(ctx)
	var errs []error
	if err := ctl.reset(ctx); err != nil {
		errs = append(errs, err)
	}
	if !keep {
		if err := mc.ps.DeleteModel(ctx, mc.model); err != nil {
			errs = append(errs, err)
		}
		if err := mc.ps.Delete(ctx, runKey(mc.model)); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		s.Event(operators.Event{Kind: "note", Labels: labels, Note: fmt.Sprintf("model %s was exported but not removed from psstore (%v): `stratus psstore gc` removes it", mc.model, err)})
	}
}

// counterWatch is the evaluator's check between evaluations: the slices'
// incarnations stay and their update counters never go back.
// Slices are told apart by partition and copy (a replica serves once its
// primary failed).
type counterWatch struct {
	inc, updates map[string]uint64
}

func (w *counterWatch) observe(model string, st psstore.ModelStats) error {
	if st.Lost != "" {
		return fmt.Errorf("model %s lost updates: %s (%w)", model, st.Lost, psstore.ErrModelLost)
	}
	if w.inc == nil {
		w.inc, w.updates = map[string]uint64{}, map[string]uint64{}
	}
	for _, sh := range st.Shards {
		id := copyID(sh.Partition, sh.Copy)
		if inc, ok := w.inc[id]; ok && inc != sh.Incarnation {
			return fmt.Errorf("model %s on shard %d (%s) was created again during training (%w)", model, sh.Shard, sh.Addr, psstore.ErrModelLost)
		}
		if u, ok := w.updates[id]; ok && sh.Updates < u {
			return fmt.Errorf("model %s on shard %d (%s) went back from %d to %d updates (%w)", model, sh.Shard, sh.Addr, u, sh.Updates, psstore.ErrModelLost)
		}
		w.inc[id], w.updates[id] = sh.Incarnation, sh.Updates
	}
	return nil
}

// keepModel reads keep_model from a stage's configuration (false when absent,
// as in configurations grid_search derives).
func keepModel(v cty.Value) bool {
	if !v.Type().IsObjectType() || !v.Type().HasAttribute("keep_model") {
		return false
	}
	a := v.GetAttr("keep_model")
	return !a.IsNull() && a.IsKnown() && a.True()
}

// RemoveModel deletes a model a train stage left in psstore, with its
// control keys and run record (for `stratus psstore rm` and `gc`). Removing
// a model that does not exist is not an error.
func RemoveModel(ctx context.Context, ps *psstore.Client, model string) error {
	if err := ps.DeleteModel(ctx, model); err != nil {
		return err
	}
	// Replica slices a client with more copies made are deleted by name.
	left, err := ps.ListModels(ctx, model)
	if err != nil {
		return err
	}
	for _, m := range left {
		if m.Name != model {
			continue
		}
		for _, sh := range m.Shards {
			if sh.Copy > 0 {
				if err := ps.DeleteModel(ctx, psstore.ReplicaName(model, sh.Partition)); err != nil {
					return err
				}
			}
		}
	}
	if err := newControl(ps, model).reset(ctx); err != nil {
		return err
	}
	return ps.Delete(ctx, runKey(model))
}

// OrphanKeys returns the control keys and run records in psstore whose model
// no longer exists (left by a run that removed its model but was cut short
// before its keys, or by an older version).
func OrphanKeys(ctx context.Context, ps *psstore.Client, models map[string]bool) ([]string, error) {
	var out []string
	for _, prefix := range []string{"ctl/", "run/"} {
		keys, err := ps.List(ctx, prefix)
		if err != nil {
			return nil, err
		}
		for _, k := range keys {
			rest := strings.TrimPrefix(k, prefix)
			name := rest
			if prefix == "ctl/" {
				i := strings.LastIndex(rest, "/")
				if j := strings.Index(rest, "/worker/"); j >= 0 {
					i = j
				}
				if i < 0 {
					continue
				}
				name = rest[:i]
			}
			if !models[name] {
				out = append(out, k)
			}
		}
	}
	return out, nil
}
