package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/stratus-ml/stratus/operators"
	"github.com/stratus-ml/stratus/operators/taskenv"
	"github.com/stratus-ml/stratus/operators/train"
	"github.com/stratus-ml/stratus/psstore"
)

// newPSStoreCmd is `stratus psstore`, the parent of the shard server and
// cluster commands (ls, rm, gc, status).
func newPSStoreCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "psstore",
		Short: "Run the sharded key-value store and parameter server",
		Long: `psstore is Stratus's shared store for stateless workers: a key-value face for
intermediate data, messages and reductions, and a parameter-server face for models.
Each "psstore serve" process is one shard; clients are given the list of shard
addresses (its order decides placement) or, once the cluster has a shard map
(after a join or a drain), any of its members as seeds, and the run's token.
"psstore serve --join" adds a shard to a running cluster, "psstore drain" removes
one; key ranges move online while clients keep working.`,
	}
	cmd.AddCommand(newPSStoreServeCmd(), newPSStoreLsCmd(), newPSStoreRmCmd(), newPSStoreGCCmd(), newPSStoreStatusCmd(), newPSStoreDrainCmd())
	return cmd
}

// newPSStoreServeCmd is `stratus psstore serve`: one shard until SIGINT/SIGTERM.
func newPSStoreServeCmd() *cobra.Command {
	var (
		addr, dataDir, token, tlsCert, tlsKey string
		addrFile, join, advertise, joinCA     string
		partitions                            string
		checkpoint                            time.Duration
		maxValue, maxModelBytes               int64
		maxKeys, maxModels, maxMsg            int
	)
	cmd := &cobra.Command{
		Use:   "serve --addr HOST:PORT --data-dir DIR --token TOKEN",
		Short: "Run one psstore shard",
		Long: fmt.Sprintf(`Run one psstore shard until interrupted (SIGINT or SIGTERM), then checkpoint the
models that changed and exit.

The shard keeps its KV data and model checkpoints in --data-dir (badger, synced
writes); restarted on the same directory it restores every model from its last
checkpoint. The first client to connect tells the shard its index and the shard
count, and the shard records them: a client later listing the shards in another
order or number is refused, because the data would be misplaced.

--partitions sets the number of partitions (key ranges) of a cluster founded
with this shard: the first client to list shards that hold no data yet places
the keys in that many partitions for the life of the data, and joins and drains
move whole partitions. The default, auto, is %d per shard of that first list, so
a shard that joins takes a share of them even with one copy of every key range.
Every shard of a new cluster must be given the same value; a shard that holds
data keeps its count.

Every request must carry the token (--token, or the STRATUS_PSSTORE_TOKEN
environment variable, which keeps it out of the process list).

With --join ADDR the shard (on an empty --data-dir) joins the cluster ADDR
belongs to once it serves: it becomes a member of the cluster's shard map and
takes its share of the key ranges, moved online from the other members (see
"stratus psstore status"). --addr-file is then written once the join is
complete. If the join fails the shard stops with the error.`, psstore.DefaultPartitionsPerShard),
		Example: `  stratus psstore serve --addr 10.0.0.5:7700 --data-dir /var/lib/stratus/ps0 --token "$TOKEN"
  STRATUS_PSSTORE_TOKEN=s3cret stratus psstore serve --addr 127.0.0.1:0 --data-dir ./ps0
  stratus psstore serve --addr 10.0.0.7:7700 --data-dir /var/lib/stratus/ps2 --join 10.0.0.5:7700`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cmd.SilenceUsage = true // from here on errors are about the run, not the flags
			if token == "" {
				token = os.Getenv("STRATUS_PSSTORE_TOKEN")
			}
			if token == "" {
				return errors.New("psstore serve: no token: pass --token or set STRATUS_PSSTORE_TOKEN (every request must carry it)")
			}
			if dataDir == "" {
				return errors.New("psstore serve: --data-dir is required: the shard keeps its data and checkpoints there")
			}
			parts, perShard, err := parsePartitions(partitions)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			if ctx == nil {
				ctx = context.Background()
			}
			ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
			defer stop()
			opts := psstore.ServerOptions{
				DataDir:            dataDir,
				Token:              token,
				TLSCertFile:        tlsCert,
				TLSKeyFile:         tlsKey,
				CheckpointInterval: checkpoint,
				MaxValueBytes:      maxValue,
				MaxKeysPerRequest:  maxKeys,
				MaxModels:          maxModels,
				MaxModelBytes:      maxModelBytes,
				MaxMessageBytes:    maxMsg,
				Partitions:         parts,
				PartitionsPerShard: perShard,
			}
			if checkpoint == 0 {
				opts.CheckpointInterval = -1 // the flag's 0 means "off"
			}
			srv, err := psstore.NewServer(opts)
			if err != nil {
				return err
			}
			lis, err := net.Listen("tcp", addr)
			if err != nil {
				srv.Close()
				return fmt.Errorf("psstore serve: listen on %s: %w (is the port in use, or the address not on this host?)", addr, err)
			}
			scheme := "plaintext"
			if tlsCert != "" {
				scheme = "TLS"
			}
			if addrFile != "" && join == "" {
				if err := writeAddrFile(addrFile, lis.Addr().String()+"\n"); err != nil {
					lis.Close()
					srv.Close()
					return fmt.Errorf("psstore serve: --addr-file: %w", err)
				}
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "psstore: shard serving on %s (%s, data dir %s)\n", lis.Addr(), scheme, dataDir)
			var joinErr error
			if join != "" {
				if advertise == "" {
					advertise = lis.Addr().String()
				}
				jctx, cancel := context.WithCancel(ctx)
				defer cancel()
				ctx = jctx
				done := make(chan struct{})
				defer func() { <-done }()
				go func() { // owned by this command: it ends before RunE returns
					defer close(done)
					if joinErr = joinCluster(jctx, cmd.ErrOrStderr(), join, advertise, token, joinCA, addrFile); joinErr != nil {
						cancel()
					}
				}()
			}
			if err := srv.ServeContext(ctx, lis); err != nil {
				return err
			}
			if joinErr != nil {
				return fmt.Errorf("psstore serve: join %s: %w", join, joinErr)
			}
			fmt.Fprintln(cmd.ErrOrStderr(), "psstore: shard stopped")
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&addr, "addr", "127.0.0.1:7700", "listen on `ADDR` (HOST:PORT; port 0 picks a free one)")
	f.StringVar(&dataDir, "data-dir", "", "keep the shard's data and checkpoints in `DIR` (required)")
	f.StringVar(&addrFile, "addr-file", "", "write the address the shard listens on to `FILE` once it serves (useful with port 0)")
	f.StringVar(&token, "token", "", "the `TOKEN` every request must carry (default $STRATUS_PSSTORE_TOKEN)")
	f.StringVar(&tlsCert, "tls-cert", "", "serve TLS with the PEM certificate in `FILE` (with --tls-key)")
	f.StringVar(&tlsKey, "tls-key", "", "the PEM private key `FILE` for --tls-cert")
	f.DurationVar(&checkpoint, "checkpoint-interval", 30*time.Second, "checkpoint changed models every `DURATION` (0 disables; Snapshot still works)")
	f.Int64Var(&maxValue, "max-value-bytes", 64<<20, "accept KV values of at most `BYTES`")
	f.IntVar(&maxKeys, "max-keys-per-request", 1<<20, "accept at most `N` keys in one sparse request or multi-get")
	f.IntVar(&maxModels, "max-models", 64*psstore.DefaultPartitionsPerShard, fmt.Sprintf("hold at most `N` model slices on the shard: one per copy of a partition it holds, so with --partitions auto (%d per shard) and 2 copies %d per model", psstore.DefaultPartitionsPerShard, 2*psstore.DefaultPartitionsPerShard))
	f.Int64Var(&maxModelBytes, "max-model-bytes", 4<<30, "use at most `BYTES` for all model slices on the shard (weights and optimizer state)")
	f.IntVar(&maxMsg, "max-message-bytes", 16<<20, "accept gRPC messages of at most `BYTES` (at least 5 MiB)")
	f.StringVar(&join, "join", "", "join the cluster the shard at `ADDR` belongs to (this shard's --data-dir must be empty)")
	f.StringVar(&advertise, "advertise", "", "the `ADDR` other members and clients reach this shard at (default the listening address; required with --join when listening on 0.0.0.0)")
	f.StringVar(&joinCA, "ca", "", "with --join: verify TLS members against the PEM CA in `FILE`")
	f.StringVar(&partitions, "partitions", "auto", fmt.Sprintf("found a new cluster with `N` partitions (key ranges; joins and drains move whole partitions), or \"auto\": %d per shard of the first client's list", psstore.DefaultPartitionsPerShard))
	return cmd
}

// parsePartitions reads serve's --partitions: "auto" (the default
// partitions per shard) or a count.
func parsePartitions(v string) (parts, perShard int, err error) {
	if v == "" || v == "auto" {
		return 0, psstore.DefaultPartitionsPerShard, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > psstore.MaxPartitions {
		return 0, 0, fmt.Errorf("psstore serve: --partitions %q: want \"auto\" or a whole number from 1 to %d (at least the number of shards the cluster starts with)", v, psstore.MaxPartitions)
	}
	return n, 0, nil
}

// joinCluster joins the shard at self to seed's cluster and reports the
// moves on w; it writes addrFile (if set) when the join is complete.
func joinCluster(ctx context.Context, w io.Writer, seed, self, token, caFile, addrFile string) error {
	te := operators.TaskEnv{PSStore: []string{seed}, Token: token}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return fmt.Errorf("--ca: %w", err)
		}
		te.PSStoreCA = string(pem)
	}
	opts, err := taskenv.PSStoreOptions(te)
	if err != nil {
		return err
	}
	final, err := psstore.JoinCluster(ctx, seed, self, func(ev psstore.MoveEvent) { printMoveEvent(w, ev) }, opts...)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "psstore: joined: %s holds partitions %v (shard map version %d, %d members)\n", self, final.Hosted(self), final.Version, len(final.Members))
	if addrFile != "" {
		return writeAddrFile(addrFile, self+"\n")
	}
	return nil
}

func printMoveEvent(w io.Writer, ev psstore.MoveEvent) {
	if ev.Move == nil {
		fmt.Fprintf(w, "psstore: shard map version %d: members %s\n", ev.Map.Version, strings.Join(ev.Map.Addrs(), ", "))
		return
	}
	fmt.Fprintf(w, "psstore: shard map version %d: moved %v (%d keys, %d model slices)\n", ev.Map.Version, *ev.Move, ev.Keys, ev.Models)
}

// newPSStoreDrainCmd is `stratus psstore drain ADDR`.
func newPSStoreDrainCmd() *cobra.Command {
	var cf clusterFlags
	cmd := &cobra.Command{
		Use:   "drain ADDR",
		Short: "Move every key range off a psstore member and remove it from the cluster",
		Long: `Move every copy of every key range the member at ADDR holds to the other
members (the least loaded first), online, while clients keep working, then remove
the member from the cluster's shard map. The drained shard keeps running,
answering every request with a redirection, until you stop it.

--addr names the cluster (any member; default ADDR itself). The other members
must be able to hold every key range's copies (at least as many members as
copies).`,
		Example: `  stratus psstore drain 10.0.0.5:7700 --token "$TOKEN"`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cmd.SilenceUsage = true
			ctx := cmdContext(cmd)
			if len(cf.addrs) == 0 && os.Getenv("STRATUS_PSSTORE_ADDRS") == "" {
				cf.addrs = []string{args[0]}
			}
			opts, _, err := cf.options()
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			final, err := psstore.DrainMember(ctx, cf.addrs[0], args[0], func(ev psstore.MoveEvent) { printMoveEvent(w, ev) }, opts...)
			if err != nil {
				return err
			}
			fmt.Fprintf(w, "drained %s: shard map version %d, members %s; stop the process when you like\n", args[0], final.Version, strings.Join(final.Addrs(), ", "))
			return nil
		},
	}
	cf.register(cmd)
	return cmd
}

// The cluster commands (`stratus psstore ls | rm | gc | status`) dial the
// shards as a client does: --addr lists them in shard order, with the
// run's token.

type clusterFlags struct {
	addrs    []string
	token    string
	wait     time.Duration
	replicas int
	ca       string
}

func (f *clusterFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringSliceVar(&f.addrs, "addr", nil, "the shards at `ADDRS`, in shard order (comma-separated or repeated; default $STRATUS_PSSTORE_ADDRS)")
	fl.StringVar(&f.token, "token", "", "the cluster's `TOKEN` (default $STRATUS_PSSTORE_TOKEN)")
	fl.DurationVar(&f.wait, "wait", 5*time.Second, "wait up to `DURATION` for a shard that is unreachable")
	fl.IntVar(&f.replicas, "replicas", 0, "`N` copies of every key range, as the cluster's clients use (default $STRATUS_PSSTORE_REPLICAS, else 2)")
	fl.StringVar(&f.ca, "ca", "", "verify TLS shards (started with --tls-cert) against the PEM CA in `FILE`")
}

func (f *clusterFlags) dial(ctx context.Context) (*psstore.Client, error) {
	opts, te, err := f.options()
	if err != nil {
		return nil, err
	}
	c, err := psstore.Dial(ctx, f.addrs, opts...)
	if err != nil {
		return nil, fmt.Errorf("%w%s", err, taskenv.TLSHint(te))
	}
	return c, nil
}

// options checks the flags and returns the client options they make.
func (f *clusterFlags) options() ([]psstore.Option, operators.TaskEnv, error) {
	if len(f.addrs) == 0 {
		if v := os.Getenv("STRATUS_PSSTORE_ADDRS"); v != "" {
			f.addrs = strings.Split(v, ",")
		}
	}
	if len(f.addrs) == 0 {
		return nil, operators.TaskEnv{}, errors.New("no shard addresses: pass --addr HOST:PORT[,HOST:PORT...] in shard order, or any member of a cluster with a shard map (or set STRATUS_PSSTORE_ADDRS)")
	}
	if f.token == "" {
		f.token = os.Getenv("STRATUS_PSSTORE_TOKEN")
	}
	if f.token == "" {
		return nil, operators.TaskEnv{}, errors.New("no token: pass --token or set STRATUS_PSSTORE_TOKEN (every shard refuses requests without it)")
	}
	wait := f.wait
	if wait <= 0 {
		wait = -1
	}
	te := operators.TaskEnv{PSStore: f.addrs, Token: f.token, PSStoreReplicas: f.replicas}
	if f.ca != "" {
		pem, err := os.ReadFile(f.ca)
		if err != nil {
			return nil, te, fmt.Errorf("--ca: %w", err)
		}
		te.PSStoreCA = string(pem)
	}
	opts, err := taskenv.PSStoreOptions(te)
	if err != nil {
		return nil, te, err
	}
	return append(opts, psstore.WithRetry(psstore.RetryPolicy{Wait: wait})), te, nil
}

func cmdContext(cmd *cobra.Command) context.Context {
	if ctx := cmd.Context(); ctx != nil {
		return ctx
	}
	return context.Background()
}

func bytesText(b uint64) string {
	switch {
	case b >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(b)/(1<<30))
	case b >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
	case b >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(b)/(1<<10))
	}
	return fmt.Sprintf("%d B", b)
}

func ageText(t, now time.Time) string {
	if t.IsZero() || t.Unix() <= 0 {
		return "-"
	}
	return now.Sub(t).Round(time.Second).String() + " ago"
}

// modelState is "ok", "LOST" (a slice lost updates) or "INCOMPLETE" (a
// shard has no slice).
func modelState(m psstore.ModelInfo) string {
	switch {
	case m.Lost() != "":
		return "LOST"
	case !m.Complete:
		return "INCOMPLETE"
	}
	return "ok"
}

// lastActive is when a model last changed: its last push, else its oldest
// checkpoint (creation counts as one).
func lastActive(m psstore.ModelInfo) time.Time {
	if t := m.LastUpdate(); !t.IsZero() {
		return t
	}
	var t time.Time
	for _, s := range m.Shards {
		if s.LastCheckpoint.After(t) {
			t = s.LastCheckpoint
		}
	}
	return t
}

func printModels(w io.Writer, models []psstore.ModelInfo, now time.Time) error {
	if len(models) == 0 {
		_, err := fmt.Fprintln(w, "no models")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "MODEL\tDIM\tOPTIMIZER\tBYTES\tUPDATES\tLAST ACTIVE\tSTATE")
	for _, m := range models {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%d\t%s\t%s\n", m.Name, m.Spec.Dim, m.Spec.Optimizer, bytesText(m.Bytes()), m.Updates(), ageText(lastActive(m), now), modelState(m))
	}
	return tw.Flush()
}

func newPSStoreLsCmd() *cobra.Command {
	var cf clusterFlags
	var kv bool
	cmd := &cobra.Command{
		Use:   "ls [PREFIX]",
		Short: "List the models (or, with --kv, the keys) in a psstore cluster",
		Long: `List the models in the cluster whose name starts with PREFIX: dimension,
optimizer, memory, update count, when they last changed and their state: ok, LOST
(a shard came back from a checkpoint older than updates it had acknowledged: the
model is inconsistent) or INCOMPLETE (a shard has no slice of it).

A train stage names its model train/<pipeline ID>/<stage>/<cache key>[/<trial>]
and deletes it once exported (unless keep_model = true).`,
		Example: `  stratus psstore ls --addr 10.0.0.5:7700,10.0.0.6:7700 --token "$TOKEN"
  stratus psstore ls --kv ctl/`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cmd.SilenceUsage = true
			prefix := ""
			if len(args) == 1 {
				prefix = args[0]
			}
			ctx := cmdContext(cmd)
			c, err := cf.dial(ctx)
			if err != nil {
				return err
			}
			defer c.Close()
			if kv {
				keys, err := c.List(ctx, prefix)
				if err != nil {
					return err
				}
				for _, k := range keys {
					fmt.Fprintln(cmd.OutOrStdout(), k)
				}
				return nil
			}
			models, err := c.ListModels(ctx, prefix)
			if err != nil {
				return err
			}
			return printModels(cmd.OutOrStdout(), models, time.Now())
		},
	}
	cf.register(cmd)
	cmd.Flags().BoolVar(&kv, "kv", false, "list key-value keys with the prefix instead of models")
	return cmd
}

func newPSStoreRmCmd() *cobra.Command {
	var cf clusterFlags
	var prefix bool
	cmd := &cobra.Command{
		Use:   "rm MODEL...",
		Short: "Delete models (with their training control keys) from a psstore cluster",
		Long: `Delete each named model from every shard, with the control keys and run record
its train stage kept beside it. With --prefix, every model whose name starts with
an argument goes. A model a running apply is training makes that apply fail.`,
		Example: `  stratus psstore rm --addr 127.0.0.1:7700 --token "$TOKEN" train/4f2a9c0d1e2b3a4c/train.lr/0123456789abcdef
  stratus psstore rm --prefix train/4f2a9c0d1e2b3a4c/`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cmd.SilenceUsage = true
			ctx := cmdContext(cmd)
			c, err := cf.dial(ctx)
			if err != nil {
				return err
			}
			defer c.Close()
			names := args
			if prefix {
				names = nil
				for _, p := range args {
					models, err := c.ListModels(ctx, p)
					if err != nil {
						return err
					}
					for _, m := range models {
						names = append(names, m.Name)
					}
				}
				if len(names) == 0 {
					fmt.Fprintln(cmd.OutOrStdout(), "no models match")
					return nil
				}
			}
			for _, n := range names {
				if err := train.RemoveModel(ctx, c, n); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "removed %s\n", n)
			}
			return nil
		},
	}
	cf.register(cmd)
	cmd.Flags().BoolVar(&prefix, "prefix", false, "treat the arguments as name prefixes")
	return cmd
}

func newPSStoreGCCmd() *cobra.Command {
	var cf clusterFlags
	var olderThan time.Duration
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "gc",
		Short: "Delete abandoned models and keys from a psstore cluster",
		Long: `Delete what no run will use again:
  - models that lost updates (LOST) or miss a slice (INCOMPLETE): no run can resume them;
  - models that have not changed for --older-than (a train stage deletes its model
    once exported, so these are left by runs that failed and were not applied
    again, or kept with keep_model = true);
  - training control keys and run records whose model is gone.
A model that is being trained changes continuously and is never collected.`,
		Example: `  stratus psstore gc --addr 127.0.0.1:7700 --token "$TOKEN" --older-than 24h --dry-run`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cmd.SilenceUsage = true
			ctx := cmdContext(cmd)
			c, err := cf.dial(ctx)
			if err != nil {
				return err
			}
			defer c.Close()
			models, err := c.ListModels(ctx, "")
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			verb := "removed"
			if dryRun {
				verb = "would remove"
			}
			now := time.Now()
			alive := map[string]bool{}
			n := 0
			for _, m := range models {
				why := ""
				switch st := modelState(m); {
				case st != "ok":
					why = strings.ToLower(st)
				case now.Sub(lastActive(m)) >= olderThan:
					why = "idle " + now.Sub(lastActive(m)).Round(time.Second).String()
				}
				if why == "" {
					alive[m.Name] = true
					continue
				}
				if !dryRun {
					if err := train.RemoveModel(ctx, c, m.Name); err != nil {
						return err
					}
				}
				n++
				fmt.Fprintf(out, "%s model %s (%s, %s)\n", verb, m.Name, why, bytesText(m.Bytes()))
			}
			keys, err := train.OrphanKeys(ctx, c, alive)
			if err != nil {
				return err
			}
			for _, k := range keys {
				if !dryRun {
					if err := c.Delete(ctx, k); err != nil {
						return err
					}
				}
				n++
				fmt.Fprintf(out, "%s key %s (its model is gone)\n", verb, k)
			}
			if n == 0 {
				fmt.Fprintln(out, "nothing to collect")
			}
			return nil
		},
	}
	cf.register(cmd)
	cmd.Flags().DurationVar(&olderThan, "older-than", 24*time.Hour, "collect models unchanged for `DURATION`")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print what would be removed, remove nothing")
	return cmd
}

func newPSStoreStatusCmd() *cobra.Command {
	var cf clusterFlags
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show a psstore cluster's members, key ranges, models, memory and update counters",
		Long: fmt.Sprintf(`Show the cluster's shard map (version, partitions, copies of every key range),
every member (address, the partitions it holds a copy of — its primaries marked
* —, uptime, model slices, memory, disk, requests, refused requests) and every
model with the update counter of each partition's primary slice (with more than
%d partitions: their sum, and the fewest with its partition). --addr may name any
member of a cluster with a shard map. A model none of whose copies of some
partition kept every update is marked LOST with the reason; a lost copy whose
partition another copy serves is listed below the table. A member holds one
slice of a model per partition copy it holds; slice counts and memory include
the replicas.`, maxUpdateColumns),
		Example: `  stratus psstore status --addr 10.0.0.5:7700,10.0.0.6:7700 --token "$TOKEN"`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cmd.SilenceUsage = true
			ctx := cmdContext(cmd)
			c, err := cf.dial(ctx)
			if err != nil {
				return err
			}
			defer c.Close()
			stats := c.ShardStatus(ctx)
			now := time.Now()
			w := cmd.OutOrStdout()
			tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
			smap := c.Map()
			fmt.Fprintln(tw, "SHARD\tADDRESS\tPARTITIONS\tUP\tSLICES\tMODEL MEMORY\tDISK\tREQUESTS\tREFUSED\tLOST")
			var down []error
			for i, s := range stats {
				var parts []string
				for _, p := range smap.Hosted(s.Addr) {
					if smap.Owners[p][0] == s.Addr {
						parts = append(parts, fmt.Sprintf("%d*", p))
					} else {
						parts = append(parts, fmt.Sprint(p))
					}
				}
				held := strings.Join(parts, ",")
				if held == "" {
					held = "-"
				}
				if s.Down != nil {
					fmt.Fprintf(tw, "%d/%d\t%s\t%s\tDOWN\t-\t-\t-\t-\t-\t-\n", i, len(stats), s.Addr, held)
					down = append(down, s.Down)
					continue
				}
				fmt.Fprintf(tw, "%d/%d\t%s\t%s\t%s\t%d\t%s\t%s\t%d\t%d\t%d\n", i, len(stats), s.Addr, held, now.Sub(s.Started).Round(time.Second),
					s.Models, bytesText(s.ModelBytes), bytesText(s.DiskBytes), s.Requests, s.AuthFailures, s.LostModels)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			copies := fmt.Sprintf("%d copies of every key range", c.Replicas())
			if c.Replicas() == 1 {
				copies = "1 copy of every key range"
			}
			fmt.Fprintf(w, "shard map version %d: %d partitions, %s\n", smap.Version, smap.Partitions, copies)
			for _, err := range down {
				fmt.Fprintf(w, "%v\n", err)
			}
			fmt.Fprintln(w)
			models, err := c.ListModels(ctx, "")
			if err != nil {
				return err
			}
			if len(models) == 0 {
				fmt.Fprintln(w, "no models")
				return nil
			}
			tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
			head := "MODEL\tBYTES"
			wide := smap.Partitions > maxUpdateColumns
			if wide {
				head += "\tUPDATES\tFEWEST"
			} else {
				for p := range smap.Partitions {
					head += fmt.Sprintf("\tUPDATES@%d", p)
				}
			}
			fmt.Fprintln(tw, head+"\tLAST ACTIVE\tSTATE")
			for _, m := range models {
				row := m.Name + "\t" + bytesText(m.Bytes())
				per := make([]string, smap.Partitions)
				for i := range per {
					per[i] = "-"
				}
				var sum uint64
				fewest, fewestAt := uint64(0), -1
				for _, s := range m.Shards {
					if s.Copy == 0 && s.Partition >= 0 && s.Partition < len(per) { // a partition's primary
						per[s.Partition] = fmt.Sprint(s.Updates)
						sum += s.Updates
						if fewestAt < 0 || s.Updates < fewest {
							fewest, fewestAt = s.Updates, s.Partition
						}
					}
				}
				switch {
				case !wide:
					for _, p := range per {
						row += "\t" + p
					}
				case fewestAt < 0:
					row += "\t-\t-"
				default:
					row += fmt.Sprintf("\t%d\t%d@%d", sum, fewest, fewestAt)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\n", row, ageText(lastActive(m), now), modelState(m))
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			for _, m := range models {
				if why := m.Lost(); why != "" {
					fmt.Fprintf(w, "\n%s LOST: %s\n", m.Name, why)
				}
				for _, d := range m.Degraded() {
					fmt.Fprintf(w, "\n%s: the copy of partition %d on shard %d lost updates (another copy serves): %s\n", m.Name, d.Partition, d.Shard, d.Lost)
				}
			}
			return nil
		},
	}
	cf.register(cmd)
	return cmd
}

// maxUpdateColumns is the most partitions status shows one update column
// each for.
const maxUpdateColumns = 8

// writeAddrFile writes content to path through a temporary file and a
// rename, so a reader never sees it half written.
func writeAddrFile(path, content string) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
