package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/agext/levenshtein"
	"github.com/spf13/cobra"

	"github.com/stratus-ml/stratus/blob"
	"github.com/stratus-ml/stratus/dsl"
	"github.com/stratus-ml/stratus/executor/runtime"
	"github.com/stratus-ml/stratus/operators"
	"github.com/stratus-ml/stratus/operators/taskenv"
	"github.com/stratus-ml/stratus/operators/train"
	"github.com/stratus-ml/stratus/planner"
	"github.com/stratus-ml/stratus/psstore"
	"github.com/stratus-ml/stratus/state"
)

type destroyFlags struct {
	vf          varFlags
	autoApprove bool
	targets     []string
	lockTimeout time.Duration
}

func (c *cli) destroyCmd() *cobra.Command {
	var f destroyFlags
	cmd := &cobra.Command{
		Use:   "destroy [DIR]",
		Short: "Delete what the pipeline's stages stored, so the next apply runs them again",
		Long: `Destroy lists, per recorded stage, what it will delete — the objects and bytes
under the stage's content-addressed prefixes in the blob store (stages/KEY/ and
tasks/KEY/), and
the psstore model a train stage left — asks for confirmation on a terminal,
deletes them and removes the stages from the state, so a later plan shows them as
+ run. With -target, only that stage and the stages that read it.

It deletes nothing outside the pipeline's own stage prefixes (uploaded sources and
other objects stay), and keeps a prefix another pipeline sharing the blob store
still records. When psstore shards are not reachable it says so and leaves the
models.`,
		Example: `  stratus destroy
  stratus destroy -auto-approve -target=train.lr`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.destroy(cmd.Context(), dirArg(args), f)
		},
	}
	f.vf.register(cmd.Flags())
	cmd.Flags().BoolVar(&f.autoApprove, "auto-approve", false, "skip the confirmation prompt")
	cmd.Flags().StringArrayVar(&f.targets, "target", nil, "destroy only the stage at `ADDR` and the stages that read it (repeatable)")
	lockTimeoutFlag(cmd.Flags(), &f.lockTimeout)
	return cmd
}

// doomed is one stage destroy will delete.
type doomed struct {
	rec     *state.StageRecord
	objects []blob.Info
	bytes   int64
	models  []string
	// keep says why the stage's objects stay (shared); the record still goes.
	keep string
}

func (c *cli) destroy(parent context.Context, dir string, f destroyFlags) (err error) {
	cfg, ok := c.loadPipeline(dir, f.vf, true)
	if !ok {
		return exitError{1}
	}
	ws := currentWorkspace(dir)
	st, err := openState(dir)
	if err != nil {
		return err
	}
	recs, err := st.Stages()
	st.Close()
	if err != nil {
		return err
	}
	if len(recs) == 0 {
		where := ""
		if ws != dsl.DefaultWorkspace {
			where = " in workspace " + ws
		}
		fmt.Fprintf(c.stdout, "No changes. No stages are recorded%s: the pipeline has not been applied, or was destroyed. Nothing to destroy.\n", where)
		return nil
	}

	ctx, stop := c.interruptible(parent) // before the lock: see apply
	defer stop()
	lock, st, err := c.lockState(ctx, dir, "stratus destroy", f.lockTimeout)
	if err != nil {
		return err
	}
	defer c.unlockState(lock, st, &err)
	if recs, err = st.Stages(); err != nil {
		return err
	}

	chosen, err := destroySelection(cfg, recs, f.targets)
	if err != nil {
		return err
	}
	store, err := pipelineBlob(ctx, cfg, dir)
	if err != nil {
		return err
	}
	// A key another record of this state keeps (a stage configured the same
	// way under another address) is not deleted.
	keptKeys := map[string]string{}
	for _, r := range recs {
		if !chosen[r.Address] {
			keptKeys[r.Key] = r.Address
		}
	}
	pipelineID, err := st.PipelineID()
	if err != nil {
		return err
	}
	var list []*doomed
	var totalObjects int
	var totalBytes int64
	first := map[string]string{} // key → the chosen stage that deletes its data
	for _, r := range recs {
		if !chosen[r.Address] {
			continue
		}
		d := &doomed{rec: r, models: modelsOf(pipelineID, r)}
		if a, ok := keptKeys[r.Key]; ok {
			d.keep = "kept: " + a + " records the same outputs"
		} else if a, ok := first[r.Key]; ok {
			d.keep = "the same outputs as " + a + ", deleted with it"
		} else if others, err := otherOwners(ctx, store, dir, r.Key); err != nil {
			return fmt.Errorf("%s: read owners: %w", r.Address, err)
		} else if len(others) > 0 {
			d.keep = "kept: also recorded by " + strings.Join(others, ", ")
		}
		if d.keep != "" {
			d.models = nil // shared too: the model may still be in use
		} else {
			first[r.Key] = r.Address
			for _, pre := range stagePrefixes(r.Key) {
				objs, err := store.List(ctx, pre)
				if err != nil {
					return fmt.Errorf("%s: list %s: %w", r.Address, store.URI(pre), err)
				}
				d.objects = append(d.objects, objs...)
			}
			for _, o := range d.objects {
				d.bytes += o.Size
			}
			totalObjects += len(d.objects)
			totalBytes += d.bytes
		}
		list = append(list, d)
	}

	// Connect to psstore first, so the list names the models that exist and a
	// warning that the shards are down comes before the question.
	ps, closePS, why := c.destroyPSStore(ctx, cfg, dir, list)
	defer closePS()
	if why != "" {
		fmt.Fprintf(c.stderr, "%s %s; their models are left in place.\n", c.paint(c.stderr, yellow, "Warning:"), why)
	}
	for _, d := range list {
		switch {
		case ps == nil && why == "":
			d.models = nil // no psstore data: nothing to delete
		case ps != nil:
			var there []string
			for _, m := range d.models {
				if _, err := ps.ModelStats(ctx, m); !errors.Is(err, psstore.ErrNotFound) {
					there = append(there, m)
				}
			}
			d.models = there
		}
	}

	w := c.stdout
	if ws != dsl.DefaultWorkspace {
		fmt.Fprintf(w, "Workspace: %s\n\n", ws)
	}
	fmt.Fprintf(w, "Stratus will destroy what these stages stored in %s:\n\n", store.URI(""))
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	for _, d := range list {
		what := d.keep
		if what == "" {
			what = fmt.Sprintf("%s, %s", plural(len(d.objects), "object"), humanBytes(d.bytes))
		}
		if len(d.models) > 0 {
			what += "; psstore model " + strings.Join(d.models, ", ")
		}
		fmt.Fprintf(tw, "  %s %s\t%s\n", c.paint(w, red, "-"), d.rec.Address, what)
	}
	tw.Flush()
	fmt.Fprintf(w, "\n%s %s to destroy: %s, %s.\n\n", c.paint(w, bold, "Plan:"), plural(len(list), "stage"), plural(totalObjects, "object"), humanBytes(totalBytes))

	if !f.autoApprove {
		if !isTerminal(c.stdin) {
			fmt.Fprintln(c.stderr, "Error: destroy needs confirmation, and input is not a terminal. Run it with -auto-approve.")
			return exitError{1}
		}
		fmt.Fprint(w, "Do you really want to destroy these stages' outputs?\n  There is no undo. Only 'yes' will be accepted to confirm.\n\n  Enter a value: ")
		line, _ := bufio.NewReader(c.stdin).ReadString('\n')
		if strings.TrimSpace(line) != "yes" {
			fmt.Fprintln(w, "\nDestroy cancelled.")
			return exitError{1}
		}
		fmt.Fprintln(w)
	}

	me := ownerID(dir)
	destroyed := map[string]bool{}
	for _, d := range list {
		if err := deleteObjects(ctx, store, d.objects, deleteConcurrency); err != nil {
			return fmt.Errorf("%s: %w (%d stage(s) destroyed before it; run destroy again to finish)", d.rec.Address, err, len(destroyed))
		}
		var notes []string
		if ps != nil {
			for _, m := range d.models {
				if err := ps.DeleteModel(ctx, m); err != nil {
					fmt.Fprintf(c.stderr, "%s %s: could not delete psstore model %s: %v\n", c.paint(c.stderr, yellow, "Warning:"), d.rec.Address, m, err)
					continue
				}
				notes = append(notes, "model "+m+" deleted")
			}
		}
		if err := store.Delete(ctx, ownerKey(d.rec.Key, me)); err != nil {
			return fmt.Errorf("%s: remove owner marker: %w", d.rec.Address, err)
		}
		if _, err := st.DeleteStage(d.rec.Address); err != nil {
			return err
		}
		destroyed[d.rec.Address] = true
		what := d.keep
		if what == "" {
			what = fmt.Sprintf("deleted %s (%s)", plural(len(d.objects), "object"), humanBytes(d.bytes))
		}
		if len(notes) > 0 {
			what += "; " + strings.Join(notes, "; ")
		}
		fmt.Fprintf(w, "%s: %s\n", d.rec.Address, what)
	}
	if err := c.dropOutputs(cfg, st, destroyed, len(f.targets) == 0); err != nil {
		return err
	}
	fmt.Fprintf(w, "\n%s %s destroyed.\n", c.paint(w, green+bold, "Destroy complete!"), plural(len(destroyed), "stage"))
	return nil
}

// destroySelection returns the recorded stages to destroy: all of them, or each
// -target stage with every recorded stage that reads it (directly or not), as
// terraform destroy -target destroys dependents too. An address neither
// recorded nor declared is an error naming the closest recorded one.
func destroySelection(cfg *dsl.Config, recs []*state.StageRecord, targets []string) (map[string]bool, error) {
	chosen := map[string]bool{}
	recorded := map[string]bool{}
	var names []string
	for _, r := range recs {
		recorded[r.Address] = true
		names = append(names, r.Address)
		if len(targets) == 0 {
			chosen[r.Address] = true
		}
	}
	if len(targets) == 0 {
		return chosen, nil
	}
	g, _ := planner.Graph(cfg)
	for _, t := range targets {
		matched := false
		for _, r := range recs {
			if r.Address == t || strings.HasPrefix(r.Address, t+".") && strings.HasPrefix(t, "module.") {
				chosen[r.Address], matched = true, true
			}
		}
		if g != nil && g.Has(t) {
			matched = true
			for _, v := range g.Vertices() {
				if recorded[v] && containsStr(g.Ancestors(v), t) {
					chosen[v] = true
				}
			}
		}
		if !matched {
			msg := fmt.Sprintf("-target=%s: no stage %s is recorded or declared.", t, t)
			if s := closestName(t, names); s != "" {
				msg += fmt.Sprintf(" Did you mean %s?", s)
			}
			return nil, fmt.Errorf("%s Recorded stages: %s", msg, strings.Join(names, ", "))
		}
	}
	return chosen, nil
}

// dropOutputs forgets the root outputs that read a destroyed stage (all of them
// after a full destroy), so output does not show values whose data is gone.
func (c *cli) dropOutputs(cfg *dsl.Config, st *state.Store, destroyed map[string]bool, all bool) error {
	outs, err := st.Outputs()
	if err != nil || len(outs) == 0 {
		return err
	}
	for name := range outs {
		if all || readsAny(cfg, "output."+name, destroyed) {
			delete(outs, name)
		}
	}
	return st.PutOutputs(outs)
}

// readsAny reports whether the node at addr reads any of the stages, directly or
// through other nodes. A node no longer declared counts as reading them.
func readsAny(cfg *dsl.Config, addr string, stages map[string]bool) bool {
	seen := map[string]bool{}
	var walk func(a string) bool
	walk = func(a string) bool {
		n, ok := cfg.Nodes[a]
		if !ok {
			return true
		}
		for _, t := range n.DependsOn() {
			if stages[t] {
				return true
			}
			if !seen[t] {
				seen[t] = true
				if walk(t) {
					return true
				}
			}
		}
		return false
	}
	return walk(addr)
}

// modelsOf returns the psstore models a stage may leave behind: a train stage's
// model, named as operators/train names it (a stage deletes it once exported
// unless it sets keep_model).
func modelsOf(pipelineID string, r *state.StageRecord) []string {
	if r.Operator == "train" {
		return []string{train.ModelName(pipelineID, r.Address, r.Key, "")}
	}
	return nil
}

// destroyPSStore connects to the pipeline's psstore shards when a stage to
// destroy left a model: the backend's listed shards (token in
// STRATUS_PSSTORE_TOKEN), or the local backend's shards, started in-process on
// their data as apply starts them. It returns why not, instead, when they cannot
// be reached.
func (c *cli) destroyPSStore(ctx context.Context, cfg *dsl.Config, dir string, list []*doomed) (*psstore.Client, func(), string) {
	nop := func() {}
	var models []string
	for _, d := range list {
		models = append(models, d.models...)
	}
	if len(models) == 0 {
		return nil, nop, ""
	}
	sort.Strings(models)
	what := "psstore model(s) " + strings.Join(models, ", ")
	s, diags := runtime.SettingsOf(cfg)
	if diags.HasErrors() {
		return nil, nop, fmt.Sprintf("the backend block does not decode: skipping %s", what)
	}
	switch {
	case s.Type == "lambda" && len(s.Lambda.PSStore) > 0:
		addrs := s.Lambda.PSStore
		te := operators.TaskEnv{PSStore: addrs, Token: os.Getenv(runtime.EnvToken)}
		if te.Token == "" {
			return nil, nop, fmt.Sprintf("cannot delete %s: the shards' token is not in %s", what, runtime.EnvToken)
		}
		ca, err := s.Lambda.CAPEM(cfg.Dir)
		if err != nil {
			return nil, nop, fmt.Sprintf("cannot delete %s: %v", what, err)
		}
		te.PSStoreCA = ca
		opts, err := taskenv.PSStoreOptions(te)
		if err != nil {
			return nil, nop, fmt.Sprintf("cannot delete %s: %v", what, err)
		}
		cl, err := psstore.Dial(ctx, addrs, opts...)
		if err != nil {
			return nil, nop, fmt.Sprintf("the psstore shards (%s) are not running or not reachable (%v): skipping %s", strings.Join(addrs, ", "), err, what)
		}
		return cl, func() { cl.Close() }, ""
	case s.Type == "lambda":
		return nil, nop, fmt.Sprintf("the backend lists no psstore shards: skipping %s", what)
	}
	sd := absDir(stateDir(dir))
	counts := []int{s.Local.PSStoreShards}
	if s.Local.ShardsAuto {
		// The planner chose the shard count per apply, and each count keeps its
		// own directory: look in every one, for the one holding the models.
		counts = localShardCounts(sd)
	}
	for _, n := range counts {
		if _, err := os.Stat(runtime.LocalShardsDir(sd, n)); errors.Is(err, os.ErrNotExist) {
			continue
		}
		lc, err := runtime.StartLocalShards(ctx, sd, n)
		if err != nil {
			return nil, nop, fmt.Sprintf("the local psstore shards did not start (%v): skipping %s", err, what)
		}
		cl, err := psstore.Dial(ctx, lc.Addrs(), psstore.WithToken(lc.Token()), psstore.WithReplicas(1)) // as apply's in-process shards
		if err != nil {
			lc.Close()
			return nil, nop, fmt.Sprintf("the local psstore shards are not reachable (%v): skipping %s", err, what)
		}
		if len(counts) == 1 {
			return cl, func() { cl.Close(); lc.Close() }, ""
		}
		for _, m := range models {
			if _, err := cl.ModelStats(ctx, m); !errors.Is(err, psstore.ErrNotFound) {
				return cl, func() { cl.Close(); lc.Close() }, ""
			}
		}
		cl.Close()
		lc.Close()
	}
	return nil, nop, ""
}

// localShardCounts lists the shard counts of the local backend's shard
// directories under the state directory sd (psstore/N-shards).
func localShardCounts(sd string) []int {
	ents, _ := os.ReadDir(filepath.Dir(runtime.LocalShardsDir(sd, 1)))
	var out []int
	for _, e := range ents {
		if n, ok := strings.CutSuffix(e.Name(), "-shards"); ok && e.IsDir() {
			if i, err := strconv.Atoi(n); err == nil && i > 0 {
				out = append(out, i)
			}
		}
	}
	return out
}

// deleteConcurrency is how many deletes destroy keeps in flight: S3 deletes one
// object per request, so a stage of thousands of partitions is bound by round
// trips (BenchmarkDestroyDeletes measures it against one at a time).
const deleteConcurrency = 16

// deleteObjects deletes objs from s with up to n requests in flight. It stops
// starting new deletes at the first error, waits for those in flight, and
// returns that error.
func deleteObjects(ctx context.Context, s blob.Store, objs []blob.Info, n int) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	keys := make(chan string)
	var wg sync.WaitGroup
	for range min(n, len(objs)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range keys {
				if err := s.Delete(ctx, k); err != nil {
					cancel(err)
				}
			}
		}()
	}
feed:
	for _, o := range objs {
		select {
		case keys <- o.Key:
		case <-ctx.Done():
			break feed
		}
	}
	close(keys)
	wg.Wait()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return ctx.Err()
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}

// humanBytes renders n bytes in B, KiB, MiB or GiB.
func humanBytes(n int64) string {
	const k = 1024
	switch {
	case n < k:
		return fmt.Sprintf("%d B", n)
	case n < k*k:
		return fmt.Sprintf("%.1f KiB", float64(n)/k)
	case n < k*k*k:
		return fmt.Sprintf("%.1f MiB", float64(n)/(k*k))
	}
	return fmt.Sprintf("%.1f GiB", float64(n)/(k*k*k))
}

func containsStr(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// closestName returns the name nearest to given within an edit distance of 3.
func closestName(given string, names []string) string {
	best, bestDist := "", 4
	for _, n := range names {
		if d := levenshtein.Distance(given, n, nil); d < bestDist {
			best, bestDist = n, d
		}
	}
	return best
}
