package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/stratus-ml/stratus/psstore"
)

// newPSStoreCmd is `stratus psstore`, the parent of the shard server command.
func newPSStoreCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "psstore",
		Short: "Run the sharded key-value store and parameter server",
		Long: `psstore is Stratus's shared store for stateless workers: a key-value face for
intermediate data, messages and reductions, and a parameter-server face for models.
Each "psstore serve" process is one shard; clients are given the list of shard
addresses (its order decides placement) and the run's token.`,
	}
	cmd.AddCommand(newPSStoreServeCmd())
	return cmd
}

// newPSStoreServeCmd is `stratus psstore serve`: one shard until SIGINT/SIGTERM.
func newPSStoreServeCmd() *cobra.Command {
	var (
		addr, dataDir, token, tlsCert, tlsKey string
		checkpoint                            time.Duration
		maxValue, maxModelBytes               int64
		maxKeys, maxModels, maxMsg            int
	)
	cmd := &cobra.Command{
		Use:   "serve --addr HOST:PORT --data-dir DIR --token TOKEN",
		Short: "Run one psstore shard",
		Long: `Run one psstore shard until interrupted (SIGINT or SIGTERM), then checkpoint the
models that changed and exit.

The shard keeps its KV data and model checkpoints in --data-dir (badger, synced
writes); restarted on the same directory it restores every model from its last
checkpoint. The first client to connect tells the shard its index and the shard
count, and the shard records them: a client later listing the shards in another
order or number is refused, because the data would be misplaced.

Every request must carry the token (--token, or the STRATUS_PSSTORE_TOKEN
environment variable, which keeps it out of the process list).`,
		Example: `  stratus psstore serve --addr 10.0.0.5:7700 --data-dir /var/lib/stratus/ps0 --token "$TOKEN"
  STRATUS_PSSTORE_TOKEN=s3cret stratus psstore serve --addr 127.0.0.1:0 --data-dir ./ps0`,
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
			fmt.Fprintf(cmd.ErrOrStderr(), "psstore: shard serving on %s (%s, data dir %s)\n", lis.Addr(), scheme, dataDir)
			if err := srv.ServeContext(ctx, lis); err != nil {
				return err
			}
			fmt.Fprintln(cmd.ErrOrStderr(), "psstore: shard stopped")
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&addr, "addr", "127.0.0.1:7700", "listen on `ADDR` (HOST:PORT; port 0 picks a free one)")
	f.StringVar(&dataDir, "data-dir", "", "keep the shard's data and checkpoints in `DIR` (required)")
	f.StringVar(&token, "token", "", "the `TOKEN` every request must carry (default $STRATUS_PSSTORE_TOKEN)")
	f.StringVar(&tlsCert, "tls-cert", "", "serve TLS with the PEM certificate in `FILE` (with --tls-key)")
	f.StringVar(&tlsKey, "tls-key", "", "the PEM private key `FILE` for --tls-cert")
	f.DurationVar(&checkpoint, "checkpoint-interval", 30*time.Second, "checkpoint changed models every `DURATION` (0 disables; Snapshot still works)")
	f.Int64Var(&maxValue, "max-value-bytes", 64<<20, "accept KV values of at most `BYTES`")
	f.IntVar(&maxKeys, "max-keys-per-request", 1<<20, "accept at most `N` keys in one sparse request or multi-get")
	f.IntVar(&maxModels, "max-models", 64, "hold at most `N` models on the shard")
	f.Int64Var(&maxModelBytes, "max-model-bytes", 4<<30, "use at most `BYTES` for all model slices on the shard (weights and optimizer state)")
	f.IntVar(&maxMsg, "max-message-bytes", 16<<20, "accept gRPC messages of at most `BYTES` (at least 5 MiB)")
	return cmd
}
