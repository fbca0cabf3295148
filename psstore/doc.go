// Package psstore is Stratus's shared store for stateless workers: a sharded
// key-value store and parameter server spoken to over gRPC, or called
// directly when the shard lives in the client's process (see Transports).
//
// # Two faces
//
// The key-value face (Put, Get, MultiGet, Delete, List, MergeFloats, Append)
// carries intermediate data, messages and reductions between workers. Values
// are byte strings of up to 64 MiB (streamed in 4 MiB chunks); every
// acknowledged write is durable (badger with synced writes).
//
// The parameter-server face holds models: dense float32 vectors addressed by
// uint64 feature indices (already hashed by the caller). Workers pull the
// coordinates a minibatch touches (PullSparse), push raw gradients for them
// (PushSparse), and the shard applies the model's optimizer per coordinate.
// PullDense returns the whole vector for evaluation and export. Models are
// checkpointed to badger periodically and on Snapshot; a restarted shard
// resumes from its last checkpoint.
//
// # A model knows how far it got
//
// Each slice keeps its update counters (pushes, coordinate updates) with
// its weights and in every checkpoint, and an incarnation: a random number
// drawn when the slice is created, so a model deleted and created again, or
// created afresh on an empty data directory, is told apart from the one a
// run started with (ModelStats.Shards). Before the first push after a
// checkpoint the shard durably marks the slice dirty; a shard that restarts
// after a crash with a slice marked dirty since its last checkpoint knows
// the slice lost acknowledged updates. Such a slice answers stats but
// refuses pulls and pushes with codes.DataLoss (ErrModelLost) until it is
// deleted: its weights no longer come from the same point of the run as
// the other shards'. A clean stop (Close) checkpoints and loses nothing.
//
// # Transports
//
// A client reaches a shard over gRPC, or, when the shard lives in the
// client's own process (started by StartLocal or StartLocalAsync, as
// `stratus apply` does on the embedded default), by calling it directly: Dial picks the in-process
// transport by itself for every address StartLocal registered, when the
// token matches and neither side uses TLS; remote shards, the functions of
// the Lambda backend and `stratus psstore serve` keep gRPC.
// WithTransport(TransportGRPC), or $STRATUS_PSSTORE_TRANSPORT=grpc, forces
// gRPC everywhere; Client.InProcess says which was chosen. In-process, a
// sparse pull reads the slice into the client's per-call plan and scatters
// it into the caller's buffer (no encoding, no message); a push is applied
// in the caller's goroutine when nothing of it can wait (no push of this
// client to that shard unresolved, no checkpoint holding the slice), else
// copied once into a queue per shard that a goroutine of the client
// applies in order — either way with the same window, ordering, Flush and
// late-error contract as the gRPC push stream; a dense pull copies the
// slice once. Every other call runs
// the shard's gRPC handler with its messages passed by pointer. The
// guarantees are the transport's business, not the caller's: the same
// checks, status codes and messages (model lost, key out of range, limits,
// a closing shard answers Unavailable and is waited for under the
// RetryPolicy), the same counters and slice identities, replication and
// failover, the caller's context honoured; WithFloat16 rounds values as its
// wire would, so results do not depend on the transport. A request counts
// in ServerStats.Requests once per unary call or stream on both
// transports (in-process pulls and pushes, like the gRPC long-lived
// streams' messages, are not counted one by one). The package's tests run
// over both transports.
//
// # Unreachable shards
//
// The client waits for a shard that is down (restarting) instead of
// failing at once: see RetryPolicy.
//
// # Sharding and replication
//
// One server process is one shard and knows nothing about the others; the
// Client decides placement. With N shards (the order of the address list
// given to Dial), model coordinate k belongs to partition k mod N at local
// index k div N, so every slice holds about dim/N coordinates plus
// optimizer state; a KV key belongs to partition fnv1a64(key) mod N.
// Partition p lives on shard p and, with R copies (WithReplicas; default 2
// with two shards or more), on the R-1 shards after it: acknowledged KV
// writes are on every copy, pushes reach every copy asynchronously (a
// replica lags by at most the push window), and a client whose copy fails
// (unreachable, or back from a crash with lost updates) fails over to the
// next copy by itself. See replica.go for the details and the limits. Dial tells
// every shard its index and N (Hello); the shard records them in its data
// directory and refuses a client that disagrees, because changing N or the
// address order would misplace every stored key.
//
// # Optimizers
//
// A push carries the raw gradient g of the minibatch loss for each key (the
// client sums duplicate keys). For each pushed coordinate with weight w the
// shard computes, in float32:
//
//	g  += l2 * w                      (L2 regularisation, when l2 > 0)
//	sgd:      w -= lr * g
//	momentum: v  = mu*v + g;  w -= lr * v           (mu defaults to 0.9)
//	adagrad:  h += g*g;       w -= lr * g / (sqrt(h) + eps)   (eps defaults to 1e-8)
//
// Only pushed coordinates change; L2 is applied lazily, at push time.
// Each coordinate's update is atomic with respect to concurrent pushes (the
// coordinate's lock stripe is held while it is applied), but a push is not
// atomic as a whole and pushes from different workers interleave
// (Hogwild-style asynchronous SGD).
//
// # Security
//
// Every request carries the run's token in gRPC metadata
// ("authorization: Bearer <token>"); the shard compares it in constant time,
// answers codes.Unauthenticated to a wrong or missing token and counts the
// refusal. TLS is optional. Request sizes, key counts, value sizes, model
// count and model memory are limited per shard (ServerOptions) so a bad
// client gets InvalidArgument or ResourceExhausted rather than exhausting
// the shard.
package psstore
