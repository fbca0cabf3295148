package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/hashicorp/hcl/v2/hclwrite"
	"github.com/spf13/cobra"

	"github.com/stratus-ml/stratus/executor"
	"github.com/stratus-ml/stratus/planner"
	"github.com/stratus-ml/stratus/state"
)

// recordRun writes the history of an apply to the state: every apply, whether it
// succeeded, failed or was interrupted. A failure to record is a warning; the
// apply's own result stands.
// git is the pipeline's commit as gitAsync found it.
func (c *cli) recordRun(ctx context.Context, st *state.Store, dir string, p *planner.Plan, sum *executor.Summary, started time.Time, applyErr error, git func() (string, bool)) {
	r := &state.RunRecord{
		ID:       newRunID(),
		Started:  started.UTC(),
		Finished: time.Now().UTC(),
		Status:   "succeeded",
		User:     currentUser(),
		Host:     hostname(),
	}
	switch {
	case applyErr != nil && ctx.Err() != nil:
		r.Status, r.Error = "interrupted", applyErr.Error()
	case applyErr != nil:
		r.Status, r.Error = "failed", applyErr.Error()
	}
	r.GitCommit, r.GitDirty = git()
	if p.Config != nil {
		if p.Config.Backend != nil {
			r.Backend = p.Config.Backend.Type
		}
		r.Variables = map[string]string{}
		for name, v := range p.Config.RootVars() {
			if v.IsWhollyKnown() {
				r.Variables[name] = string(hclwrite.TokensForValue(v).Bytes())
			}
		}
	}
	done := map[string]*executor.StageSummary{}
	if sum != nil {
		for _, s := range sum.Stages {
			done[s.Address] = s
		}
	}
	for _, sp := range p.Stages {
		rs := state.RunStage{Address: sp.Address, Key: sp.Key, Action: "skipped"}
		if s := done[sp.Address]; s != nil {
			rs.Action, rs.Metrics = s.Action, s.Metrics
		}
		if len(rs.Metrics) == 0 && rs.Action == "cached" {
			if rec, err := st.Stage(sp.Address); err == nil && rec != nil && rec.Key == sp.Key {
				rs.Metrics = rec.Metrics
			}
		}
		r.Stages = append(r.Stages, rs)
	}
	if err := st.PutRun(r); err != nil {
		fmt.Fprintf(c.stderr, "Warning: this apply was not recorded in the run history: %s.\n", err)
	}
}

func newRunID() string {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return "r-" + hex.EncodeToString(b[:])
}

func currentUser() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	return "unknown"
}

// gitAsync runs gitState(dir) on a goroutine, so that its git processes run
// while the pipeline applies rather than after it, and returns a function that
// waits for the result. The commit is the one checked out when the apply began.
func gitAsync(dir string) func() (commit string, dirty bool) {
	type result struct {
		commit string
		dirty  bool
	}
	ch := make(chan result, 1)
	go func() { // owned by the returned function, which waits for it
		var s result
		s.commit, s.dirty = gitState(dir)
		ch <- s
	}()
	var once sync.Once
	var s result
	return func() (string, bool) {
		once.Do(func() { s = <-ch })
		return s.commit, s.dirty
	}
}

// gitState is the commit checked out in dir and whether dir's files differ from it;
// "" outside a git work tree or without git.
func gitState(dir string) (commit string, dirty bool) {
	if !inGitWorkTree(dir) {
		return "", false
	}
	out, err := exec.Command("git", "-C", dir, "rev-parse", "HEAD").Output()
	if err != nil {
		return "", false
	}
	commit = strings.TrimSpace(string(out))
	st, err := exec.Command("git", "-C", dir, "status", "--porcelain", "--untracked-files=no", "--", ".").Output()
	return commit, err == nil && len(strings.TrimSpace(string(st))) > 0
}

// inGitWorkTree reports whether git could find a repository for dir: a .git
// (directory, or file of a linked worktree) in dir or a parent, or GIT_DIR set.
// Outside one, gitState starts no git process: on a small apply its start-up
// took a core from the first stage for nothing.
func inGitWorkTree(dir string) bool {
	if os.Getenv("GIT_DIR") != "" {
		return true
	}
	d, err := filepath.Abs(dir)
	if err != nil {
		return true // let git decide
	}
	for {
		if _, err := os.Lstat(filepath.Join(d, ".git")); err == nil {
			return true
		}
		parent := filepath.Dir(d)
		if parent == d {
			return false
		}
		d = parent
	}
}

// openRuns opens the state of the pipeline in dir for reading runs.
func openRuns(dir string) (*state.Store, error) {
	st, err := openState(dir)
	if err != nil {
		return nil, err
	}
	if st == nil {
		return nil, fmt.Errorf("no state in %s: the pipeline has not been applied, so there are no runs", stateDir(dir))
	}
	return st, nil
}

func (c *cli) runsCmd() *cobra.Command {
	var dir string
	var asJSON bool
	cmd := &cobra.Command{
		Use:     "runs [show RUN]",
		Example: "  stratus runs -dir pipelines/a9a\n  stratus runs -json",
		Short:   "List the recorded applies, or show one",
		Long: `Runs lists every apply of the pipeline in -dir (default "."), oldest first: its
ID, when it started and how long it took, who ran it on which host, the git
commit of the pipeline directory (with + when it had uncommitted changes), and
how many stages ran or were cached. A RUN is an ID, a unique prefix of one,
latest, or latest~N.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := openRuns(dir)
			if err != nil {
				return err
			}
			defer st.Close()
			runs, err := st.Runs()
			if err != nil {
				return err
			}
			if asJSON {
				if runs == nil {
					runs = []*state.RunRecord{}
				}
				return writeJSON(c.stdout, runs)
			}
			if len(runs) == 0 {
				fmt.Fprintln(c.stderr, "No runs recorded yet; `stratus apply` records one.")
				return nil
			}
			tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "RUN\tSTARTED\tDURATION\tSTATUS\tUSER@HOST\tCOMMIT\tRAN\tCACHED")
			for _, r := range runs {
				ran, cached := countActions(r)
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s@%s\t%s\t%d\t%d\n", r.ID, r.Started.Format(time.RFC3339), r.Finished.Sub(r.Started).Round(time.Millisecond), r.Status, r.User, r.Host, shortCommit(r), ran, cached)
			}
			return tw.Flush()
		},
	}
	cmd.PersistentFlags().StringVar(&dir, "dir", ".", "the pipeline in `DIR`")
	cmd.PersistentFlags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.AddCommand(&cobra.Command{
		Use:     "show RUN",
		Example: "  stratus runs show latest\n  stratus runs show latest~1 -json",
		Short:   "Show one run: variables, and each stage's action, cache key and metrics",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := openRuns(dir)
			if err != nil {
				return err
			}
			defer st.Close()
			r, err := st.Run(args[0])
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(c.stdout, r)
			}
			c.writeRun(c.stdout, r)
			return nil
		},
	})
	return cmd
}

func countActions(r *state.RunRecord) (ran, cached int) {
	for _, s := range r.Stages {
		switch s.Action {
		case "ran":
			ran++
		case "cached":
			cached++
		}
	}
	return
}

func shortCommit(r *state.RunRecord) string {
	if r.GitCommit == "" {
		return "-"
	}
	c := r.GitCommit
	if len(c) > 12 {
		c = c[:12]
	}
	if r.GitDirty {
		c += "+"
	}
	return c
}

func (c *cli) writeRun(w io.Writer, r *state.RunRecord) {
	fmt.Fprintf(w, "Run:      %s\n", r.ID)
	fmt.Fprintf(w, "Status:   %s\n", r.Status)
	if r.Error != "" {
		fmt.Fprintf(w, "Error:    %s\n", r.Error)
	}
	fmt.Fprintf(w, "Started:  %s (%s)\n", r.Started.Format(time.RFC3339), r.Finished.Sub(r.Started).Round(time.Millisecond))
	fmt.Fprintf(w, "By:       %s@%s\n", r.User, r.Host)
	fmt.Fprintf(w, "Commit:   %s\n", shortCommit(r))
	if r.Backend != "" {
		fmt.Fprintf(w, "Backend:  %s\n", r.Backend)
	}
	if len(r.Variables) > 0 {
		fmt.Fprintln(w, "\nVariables:")
		for _, k := range sortedNames(r.Variables) {
			fmt.Fprintf(w, "  %s = %s\n", k, r.Variables[k])
		}
	}
	fmt.Fprintln(w, "\nStages:")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  STAGE\tACTION\tKEY\tMETRICS")
	for _, s := range r.Stages {
		var ms []string
		for _, k := range sortedNames(s.Metrics) {
			ms = append(ms, fmt.Sprintf("%s=%s", k, formatMetric(s.Metrics[k])))
		}
		key := s.Key
		if len(key) > 12 {
			key = key[:12]
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", s.Address, s.Action, key, strings.Join(ms, " "))
	}
	tw.Flush()
}

func formatMetric(v float64) string { return fmt.Sprintf("%.6g", v) }

func writeJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

// MetricChange is one row of `stratus metrics diff`.
type MetricChange struct {
	Stage  string   `json:"stage"`
	Metric string   `json:"metric"`
	Old    *float64 `json:"old"`
	New    *float64 `json:"new"`
	// Change is New − Old, or null when either is missing.
	Change *float64 `json:"change"`
}

func (c *cli) metricsCmd() *cobra.Command {
	var dir string
	var asJSON, all bool
	cmd := &cobra.Command{
		Use:   "metrics",
		Short: "Compare the metrics of recorded runs",
	}
	diff := &cobra.Command{
		Use:     "diff [RUN_A] [RUN_B]",
		Example: "  stratus metrics diff            # the last run against the one before\n  stratus metrics diff latest~3 latest",
		Short:   "Show how each stage's metrics changed between two runs",
		Long: `Diff compares the metrics every stage recorded in two runs, as DVC's metrics
diff does between commits: RUN_A defaults to the run before the latest and RUN_B
to the latest (with one argument, RUN_A is compared with the latest). A RUN is an
ID, a unique prefix of one, latest or latest~N. Only changed metrics are shown
unless -all; a metric present in one run only shows "-" for the other.`,
		Args: cobra.MaximumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := openRuns(dir)
			if err != nil {
				return err
			}
			defer st.Close()
			refA, refB := "latest~1", "latest"
			switch len(args) {
			case 1:
				refA = args[0]
			case 2:
				refA, refB = args[0], args[1]
			}
			a, err := st.Run(refA)
			if err != nil {
				if errors.Is(err, state.ErrNoRun) && len(args) == 0 {
					return fmt.Errorf("metrics diff needs two runs: %w", err)
				}
				return err
			}
			b, err := st.Run(refB)
			if err != nil {
				return err
			}
			rows := diffMetrics(a, b, all)
			if asJSON {
				return writeJSON(c.stdout, map[string]any{"old": a.ID, "new": b.ID, "metrics": rows})
			}
			if len(rows) == 0 {
				fmt.Fprintf(c.stdout, "No metric changed between %s and %s.\n", a.ID, b.ID)
				return nil
			}
			tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintf(tw, "STAGE\tMETRIC\t%s\t%s\tCHANGE\n", a.ID, b.ID)
			for _, r := range rows {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Stage, r.Metric, optMetric(r.Old), optMetric(r.New), signedMetric(r.Change))
			}
			return tw.Flush()
		},
	}
	diff.Flags().BoolVar(&all, "all", false, "show unchanged metrics too")
	cmd.PersistentFlags().StringVar(&dir, "dir", ".", "the pipeline in `DIR`")
	cmd.PersistentFlags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.AddCommand(diff)
	return cmd
}

// diffMetrics lists every (stage, metric) of either run, sorted, with its values
// in both and the change; unchanged ones only when all is set.
func diffMetrics(a, b *state.RunRecord, all bool) []MetricChange {
	type k struct{ stage, metric string }
	vals := map[k][2]*float64{}
	for i, r := range []*state.RunRecord{a, b} {
		for _, s := range r.Stages {
			for m, v := range s.Metrics {
				v := v
				e := vals[k{s.Address, m}]
				e[i] = &v
				vals[k{s.Address, m}] = e
			}
		}
	}
	var out []MetricChange
	for key, v := range vals {
		row := MetricChange{Stage: key.stage, Metric: key.metric, Old: v[0], New: v[1]}
		if v[0] != nil && v[1] != nil {
			d := *v[1] - *v[0]
			row.Change = &d
			if d == 0 && !all {
				continue
			}
		}
		out = append(out, row)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Stage != out[j].Stage {
			return out[i].Stage < out[j].Stage
		}
		return out[i].Metric < out[j].Metric
	})
	return out
}

func optMetric(v *float64) string {
	if v == nil {
		return "-"
	}
	return formatMetric(*v)
}

func signedMetric(v *float64) string {
	if v == nil || math.IsNaN(*v) {
		return "-"
	}
	return fmt.Sprintf("%+.6g", *v)
}
