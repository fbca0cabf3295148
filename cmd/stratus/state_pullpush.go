package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/stratus-ml/stratus/state"
)

// stateBackupFile is where a local `state push` keeps the state it replaced.
const stateBackupFile = "state.backup.json"

// statePullPush returns `state pull` and `state push`, which move a whole
// state, local or remote, as one JSON snapshot (state.Snapshot).
func (c *cli) statePullPush(dir *string, lockTimeout *time.Duration) (*cobra.Command, *cobra.Command) {
	var out string
	pull := &cobra.Command{
		Use:   "pull [-o FILE]",
		Short: "Print the whole state as a JSON snapshot (or write it to FILE)",
		Example: `  stratus state pull > backup.state.json
  stratus state pull -o backup.state.json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, err := remoteState(cmd.Context(), *dir)
			if err != nil {
				return err
			}
			var data []byte
			if r != nil {
				// Checked to be a state, and printed as pull prints a local one.
				snap, _, err := r.PullSnapshot(cmd.Context())
				if err != nil {
					return err
				}
				if snap == nil {
					return fmt.Errorf("no state at %s: the pipeline has not been applied", r.URI(state.RemoteStateKey))
				}
				data = snap.Bytes()
			} else {
				st, err := state.OpenExisting(stateDBDir(*dir))
				if err != nil {
					return err
				}
				if st == nil {
					return fmt.Errorf("no state in %s: the pipeline has not been applied", stateDir(*dir))
				}
				snap, err := st.Snapshot(state.Who())
				st.Close()
				if err != nil {
					return err
				}
				data = snap.Bytes()
			}
			if out == "" || out == "-" {
				_, err = c.stdout.Write(data)
				return err
			}
			return writeSnapshotFile(out, data)
		},
	}
	pull.Flags().StringVarP(&out, "out", "o", "", "write the snapshot to `FILE` instead of standard output")

	var force bool
	push := &cobra.Command{
		Use:   "push FILE",
		Short: "Replace the state with a snapshot written by state pull",
		Long: `Push replaces the whole state (local or remote) with a snapshot that state pull
wrote, under the state lock. It refuses to push over a state that holds something the
file does not — a stage recorded or removed since the pull (a higher serial), a run
the file does not list, or another pipeline's state (lineage) — unless -force; the
state it replaces is kept (state.backup.json beside it).`,
		Example: `  stratus state push backup.state.json
  stratus state push -force .stratus/errored.state.json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) (err error) {
			file := args[0]
			var in io.Reader = c.stdin
			if file != "-" {
				f, err := os.Open(file)
				if err != nil {
					return err
				}
				defer f.Close()
				in = f
			}
			snap, err := state.ParseSnapshot(in, file)
			if err != nil {
				return err
			}
			lock, st, err := c.lockState(cmd.Context(), *dir, "stratus state push", *lockTimeout)
			if err != nil {
				return err
			}
			defer c.unlockState(lock, st, &err)
			where := stateWhere(*dir, st.Remote())
			cur, err := st.Snapshot(state.Who())
			if err != nil {
				return err
			}
			if len(cur.Entries) > 0 {
				if why := cur.NewerThan(snap); why != "" {
					if !force {
						return fmt.Errorf("refusing to push %s over the state at %s: %s. Pull it first (stratus state pull -o FILE) and push that, or push with -force to replace it (the replaced state is kept in %s)", file, where, why, backupWhere(*dir, st))
					}
					if cur.Serial >= snap.Serial {
						// Saved plans of the replaced state must not match.
						snap.SetSerial(cur.Serial + 1)
					}
				}
				if err := backup(cmd, *dir, st, cur); err != nil {
					return fmt.Errorf("keep the state being replaced: %w; nothing was pushed", err)
				}
			}
			if err := st.Restore(snap); err != nil {
				return err
			}
			if r := st.Remote(); r != nil {
				if err := st.Push(cmd.Context()); err != nil {
					return err
				}
			}
			fmt.Fprintf(c.stdout, "Pushed %s to %s: %d stage(s), %d run(s), serial %d.\n", file, where, countStages(snap), len(snap.Runs), snap.Serial)
			return nil
		},
	}
	push.Flags().BoolVar(&force, "force", false, "push even over a newer state or another pipeline's")
	lockTimeoutFlag(push.Flags(), lockTimeout)
	return pull, push
}

func countStages(snap *state.Snapshot) int {
	n := 0
	for _, e := range snap.Entries {
		if strings.HasPrefix(e.Key, "stage/") {
			n++
		}
	}
	return n
}

func backupWhere(dir string, st *state.Store) string {
	if r := st.Remote(); r != nil {
		return r.URI(state.RemoteBackupKey)
	}
	return filepath.Join(stateDir(dir), stateBackupFile)
}

func backup(cmd *cobra.Command, dir string, st *state.Store, cur *state.Snapshot) error {
	if r := st.Remote(); r != nil {
		return r.Backup(cmd.Context(), cur.Bytes())
	}
	return writeSnapshotFile(filepath.Join(stateDir(dir), stateBackupFile), cur.Bytes())
}

// writeSnapshotFile writes data to path (created or replaced) through a
// temporary file and a rename.
func writeSnapshotFile(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	_, werr := tmp.Write(data)
	if cerr := tmp.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(tmp.Name(), path)
	}
	if werr != nil {
		os.Remove(tmp.Name())
		return errors.Join(fmt.Errorf("write %s", path), werr)
	}
	return nil
}
