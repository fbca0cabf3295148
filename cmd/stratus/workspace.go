package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

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
// others by name.
func workspaces(dir string) ([]string, error) {
	out := []string{dsl.DefaultWorkspace}
	ents, err := os.ReadDir(filepath.Join(dir, state.Dir, "workspaces"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	var names []string
	for _, e := range ents {
		if e.IsDir() && workspaceName.MatchString(e.Name()) {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	return append(out, names...), nil
}

func workspaceExists(dir, ws string) bool {
	if ws == dsl.DefaultWorkspace {
		return true
	}
	st, err := os.Stat(workspaceDir(dir, ws))
	return err == nil && st.IsDir()
}

// checkWorkspace reports a selected workspace that does not exist, naming the
// closest one and how to create it.
func checkWorkspace(dir, ws string) error {
	if err := validWorkspaceName(ws); err != nil {
		return fmt.Errorf("the selected workspace (%s): %w", workspaceSource(dir), err)
	}
	if workspaceExists(dir, ws) {
		return nil
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
			if workspaceExists(dir, name) {
				return fmt.Errorf("workspace %q already exists; select it with: stratus workspace select %s", name, name)
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
			if !workspaceExists(dir, name) {
				if !orCreate {
					return fmt.Errorf("%w (or select it with -or-create)", noWorkspace(dir, name, ""))
				}
				if err := os.MkdirAll(workspaceDir(dir, name), 0o755); err != nil {
					return fmt.Errorf("create workspace: %w", err)
				}
				fmt.Fprintf(c.stdout, "Created workspace %q.\n", name)
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
			switch {
			case name == dsl.DefaultWorkspace:
				return errors.New("the default workspace cannot be deleted")
			case !workspaceExists(dir, name):
				return noWorkspace(dir, name, "")
			case name == currentWorkspace(dir):
				return fmt.Errorf("workspace %q is your active workspace: select another (stratus workspace select default) and try again", name)
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
				return fmt.Errorf("workspace %q records %d stage(s) whose outputs are in the blob store. Run stratus destroy in it first (stratus workspace select %s && stratus destroy), or delete it with -force and leave those outputs untracked", name, len(recs), name)
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
