package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/stratus-ml/stratus/blob/s3blob"
	"github.com/stratus-ml/stratus/dsl"
	"github.com/stratus-ml/stratus/executor"
	"github.com/stratus-ml/stratus/state"
)

// Workspaces, as Terraform's: each is its own state (and lock, local blob store
// and psstore data) in .stratus/workspaces/NAME; the default workspace is .stratus
// itself, so a pipeline that never used workspaces is in it. The selected one is
// named in .stratus/environment; STRATUS_WORKSPACE overrides it.

// envWorkspace overrides the selected workspace, as TF_WORKSPACE does.
const envWorkspace = "STRATUS_WORKSPACE"

// environmentFile names the selected workspace, as .terraform/environment does.
func environmentFile(dir string) string { return filepath.Join(dir, state.Dir, "environment") }

// workspaceDir is the working directory of workspace ws of the pipeline in dir.
func workspaceDir(dir, ws string) string {
	if ws == "" || ws == dsl.DefaultWorkspace {
		return filepath.Join(dir, state.Dir)
	}
	return filepath.Join(dir, state.Dir, "workspaces", ws)
}

// currentWorkspace is the workspace commands in dir use.
func currentWorkspace(dir string) string {
	if ws := os.Getenv(envWorkspace); ws != "" {
		return ws
	}
	b, err := os.ReadFile(environmentFile(dir))
	if err != nil {
		return dsl.DefaultWorkspace
	}
	if ws := strings.TrimSpace(string(b)); ws != "" {
		return ws
	}
	return dsl.DefaultWorkspace
}

var workspaceName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

func validWorkspaceName(name string) error {
	if !workspaceName.MatchString(name) {
		return fmt.Errorf("%q is not a valid workspace name: use letters, digits, - and _ (at most 64)", name)
	}
	return nil
}

// workspaces lists the workspaces of the pipeline in dir: default first, then the
// others by name. With a remote state, they are the ones with a local directory
// and the ones with a state in the bucket (a teammate's), as Terraform's s3
// backend lists them.
func workspaces(dir string) ([]string, error) {
	ents, err := os.ReadDir(filepath.Join(dir, state.Dir, "workspaces"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	seen := map[string]bool{}
	for _, e := range ents {
		if e.IsDir() && workspaceName.MatchString(e.Name()) {
			seen[e.Name()] = true
		}
	}
	remote, err := remoteWorkspaces(dir)
	if err != nil {
		return nil, err
	}
	for _, n := range remote {
		if workspaceName.MatchString(n) {
			seen[n] = true
		}
	}
	names := make([]string, 0, len(seen))
	for n := range seen {
		names = append(names, n)
	}
	sort.Strings(names)
	return append([]string{dsl.DefaultWorkspace}, names...), nil
}

// remoteWorkspaces lists the workspaces with a state in the pipeline's remote
// state bucket; nil when its state is local.
func remoteWorkspaces(dir string) ([]string, error) {
	loc, err := remoteStateLocation(dir)
	if err != nil || loc == nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	return state.RemoteWorkspaces(ctx, loc.Bucket, loc.Prefix, s3blob.Options{})
}

// workspaceExists reports whether workspace ws exists locally or, with a
// remote state, in the bucket.
func workspaceExists(dir, ws string) (bool, error) {
	if ws == dsl.DefaultWorkspace {
		return true, nil
	}
	if st, err := os.Stat(workspaceDir(dir, ws)); err == nil && st.IsDir() {
		return true, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	r, err := remoteStateOf(ctx, dir, ws)
	if err != nil || r == nil {
		return false, err
	}
	return r.Exists(ctx)
}

// checkWorkspace reports a selected workspace that does not exist, naming the
// closest one and how to create it.
func checkWorkspace(dir, ws string) error {
	if err := validWorkspaceName(ws); err != nil {
		return fmt.Errorf("the selected workspace (%s): %w", workspaceSource(dir), err)
	}
	if ok, err := workspaceExists(dir, ws); err != nil || ok {
		return err
	}
	return noWorkspace(dir, ws, fmt.Sprintf(" (selected by %s)", workspaceSource(dir)))
}

func workspaceSource(dir string) string {
	if os.Getenv(envWorkspace) != "" {
		return envWorkspace
	}
	return filepath.Join(state.Dir, "environment")
}

func noWorkspace(dir, ws, how string) error {
	msg := fmt.Sprintf("workspace %q does not exist%s.", ws, how)
	all, _ := workspaces(dir)
	if best := closestName(ws, all); best != "" {
		msg += fmt.Sprintf(" Did you mean %q?", best)
	}
	return fmt.Errorf("%s The workspaces are: %s. Create it with: stratus workspace new %s", msg, strings.Join(all, ", "), ws)
}

func (c *cli) workspaceCmd() *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "workspace",
		Short: "Create, select, list and delete workspaces: separate states of one pipeline",
		Long: `A workspace is a separate state of the same pipeline, with its own record of
what ran, its own lock and its own prefix in the blob store (workspaces/NAME under
a configured store; .stratus/workspaces/NAME for the local one). The default
workspace is the one a pipeline starts in. Expressions read the current one as
stratus.workspace. ` + envWorkspace + ` overrides the selected workspace.`,
		Example: `  stratus workspace new tuning
  stratus apply -var learning_rate=0.5
  stratus workspace select default
  stratus workspace list`,
	}
	cmd.PersistentFlags().StringVar(&dir, "dir", ".", "the pipeline `DIR`")

	overridden := func() error {
		if ws := os.Getenv(envWorkspace); ws != "" {
			return fmt.Errorf("the workspace is set by %s=%s; unset it to select or create workspaces", envWorkspace, ws)
		}
		return nil
	}
	selectWS := func(name string) error {
		if err := os.MkdirAll(filepath.Join(dir, state.Dir), 0o755); err != nil {
			return err
		}
		return os.WriteFile(environmentFile(dir), []byte(name+"\n"), 0o644)
	}

	newCmd := &cobra.Command{
		Use:     "new NAME",
		Short:   "Create a workspace and select it",
		Example: "  stratus workspace new tuning",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if err := validWorkspaceName(name); err != nil {
				return err
			}
			if err := overridden(); err != nil {
				return err
			}
			exists, err := workspaceExists(dir, name)
			if err != nil {
				return err
			}
			if exists {
				return fmt.Errorf("workspace %q already exists; select it with: stratus workspace select %s", name, name)
			}
			if err := createRemoteWorkspace(dir, name); err != nil {
				return err
			}
			if err := os.MkdirAll(workspaceDir(dir, name), 0o755); err != nil {
				return fmt.Errorf("create workspace: %w", err)
			}
			if err := selectWS(name); err != nil {
				return err
			}
			fmt.Fprintf(c.stdout, "Created and switched to workspace %q!\n\n", name)
			fmt.Fprintln(c.stdout, "You're now on a new, empty workspace. Workspaces isolate their state,\nso if you run \"stratus plan\" Stratus will not see any existing state\nfor this configuration.")
			return nil
		},
	}
	var orCreate bool
	selectCmd := &cobra.Command{
		Use:     "select NAME",
		Short:   "Select a workspace",
		Example: "  stratus workspace select default",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if err := validWorkspaceName(name); err != nil {
				return err
			}
			if err := overridden(); err != nil {
				return err
			}
			exists, err := workspaceExists(dir, name)
			if err != nil {
				return err
			}
			if !exists {
				if !orCreate {
					return fmt.Errorf("%w (or select it with -or-create)", noWorkspace(dir, name, ""))
				}
				if err := createRemoteWorkspace(dir, name); err != nil {
					return err
				}
				fmt.Fprintf(c.stdout, "Created workspace %q.\n", name)
			}
			// A teammate's remote workspace gets its local directory here.
			if err := os.MkdirAll(workspaceDir(dir, name), 0o755); err != nil {
				return fmt.Errorf("create workspace: %w", err)
			}
			if err := selectWS(name); err != nil {
				return err
			}
			fmt.Fprintf(c.stdout, "Switched to workspace %q.\n", name)
			return nil
		},
	}
	selectCmd.Flags().BoolVar(&orCreate, "or-create", false, "create the workspace if it does not exist")
	listCmd := &cobra.Command{
		Use:     "list",
		Short:   "List the workspaces, marking the current one with *",
		Example: "  stratus workspace list",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			all, err := workspaces(dir)
			if err != nil {
				return err
			}
			cur := currentWorkspace(dir)
			for _, w := range all {
				mark := " "
				if w == cur {
					mark = "*"
				}
				fmt.Fprintf(c.stdout, "%s %s\n", mark, w)
			}
			return nil
		},
	}
	showCmd := &cobra.Command{
		Use:     "show",
		Short:   "Print the current workspace's name",
		Example: "  stratus workspace show",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintln(c.stdout, currentWorkspace(dir))
			return nil
		},
	}
	var force bool
	deleteCmd := &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a workspace and its state",
		Long: `Delete removes a workspace's state and its local files. A workspace that still
records stages is only deleted with -force: run stratus destroy in it first, or the
outputs it recorded stay in the blob store with nothing tracking them.`,
		Example: "  stratus workspace select default && stratus workspace delete tuning",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if err := validWorkspaceName(name); err != nil {
				return err
			}
			exists, err := workspaceExists(dir, name)
			switch {
			case name == dsl.DefaultWorkspace:
				return errors.New("the default workspace cannot be deleted")
			case err != nil:
				return err
			case !exists:
				return noWorkspace(dir, name, "")
			case name == currentWorkspace(dir):
				return fmt.Errorf("workspace %q is your active workspace: select another (stratus workspace select default) and try again", name)
			}
			refuse := func(n int) error {
				return fmt.Errorf("workspace %q records %d stage(s) whose outputs are in the blob store. Run stratus destroy in it first (stratus workspace select %s && stratus destroy), or delete it with -force and leave those outputs untracked", name, n, name)
			}
			if err := deleteRemoteWorkspace(dir, name, force, refuse); err != nil {
				return err
			}
			wd := workspaceDir(dir, name)
			lock, err := executor.AcquireLock(wd, executor.LockInfo{PID: os.Getpid(), Host: hostname(), Started: time.Now(), Command: "stratus workspace delete"})
			if err != nil {
				return err
			}
			st, err := state.OpenExisting(filepath.Join(wd, "state"))
			if err != nil {
				lock.Release()
				return err
			}
			recs, err := st.Stages()
			st.Close()
			if err != nil {
				lock.Release()
				return err
			}
			if len(recs) > 0 && !force {
				lock.Release()
				return refuse(len(recs))
			}
			lock.Release()
			if err := os.RemoveAll(wd); err != nil {
				return fmt.Errorf("delete workspace: %w", err)
			}
			fmt.Fprintf(c.stdout, "Deleted workspace %q!\n", name)
			return nil
		},
	}
	deleteCmd.Flags().BoolVar(&force, "force", false, "delete the workspace even if it still records stages")
	cmd.AddCommand(newCmd, selectCmd, listCmd, showCmd, deleteCmd)
	return cmd
}

// orDefault is ws, or the default workspace's name when ws is empty.
func orDefault(ws string) string {
	if ws == "" {
		return dsl.DefaultWorkspace
	}
	return ws
}

// createRemoteWorkspace pushes an empty state for workspace ws when the
// pipeline's state is remote, so that teammates see the workspace.
func createRemoteWorkspace(dir, ws string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	r, err := remoteStateOf(ctx, dir, ws)
	if err != nil || r == nil {
		return err
	}
	info := state.NewLockInfo("stratus workspace new")
	if err := r.Create(ctx, info.Who()); err != nil {
		if errors.Is(err, state.ErrStateChanged) {
			return fmt.Errorf("workspace %q already exists in %s; select it with: stratus workspace select %s", ws, r.URI(state.RemoteStateKey), ws)
		}
		return fmt.Errorf("create workspace %q: %w", ws, err)
	}
	return nil
}

// deleteRemoteWorkspace removes workspace ws's remote state under its lock,
// refusing (with refuse) one that records stages unless force.
func deleteRemoteWorkspace(dir, ws string, force bool, refuse func(int) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	r, err := remoteStateOf(ctx, dir, ws)
	if err != nil || r == nil {
		return err
	}
	info := state.NewLockInfo("stratus workspace delete")
	if err := r.Lock(ctx, info); err != nil {
		return err
	}
	defer r.Unlock(context.WithoutCancel(ctx), info.ID)
	snap, _, err := r.PullSnapshot(ctx)
	if err != nil {
		return err
	}
	if n := snap.StageCount(); n > 0 && !force {
		return refuse(n)
	}
	return r.Delete(ctx)
}
