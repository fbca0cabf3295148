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
// over both transports. One exception: the shard-map gate (MOVED refusals,
// waits for a newer map; see Elasticity) is the gRPC path's interceptor, and
// in-process calls are not gated. In-process shards are the embedded
// default's own, whose static map never changes; do not join or drain a
// cluster of an apply's in-process shards.
//
// # Unreachable shards
//
// The client waits for a shard that is down (restarting) instead of
// failing at once: see RetryPolicy.
//
// # Sharding and replication
//
// One server process is one shard; the Client decides placement from the
// cluster's shard map (see Elasticity). With N partitions, model
// coordinate k belongs to partition k mod N at local index k div N, so
// every slice holds about dim/N coordinates plus optimizer state; a KV key
// belongs to partition fnv1a64(key) mod N. N is chosen when the cluster is
// founded (ServerOptions.Partitions and PartitionsPerShard, `stratus
// psstore serve --partitions`, whose default is 2 per shard; by default,
// as for StartLocal's shards, the number of shards in the address list
// given to Dial), and fixed for the life of the data. In the static
// placement, partition p of a list of S shards lives on shard p mod S and,
// with R copies (WithReplicas; default 2
// with two shards or more), on the R-1 shards after it: acknowledged KV
// writes are on every copy, pushes reach every copy asynchronously (a
// replica lags by at most the push window), and a client whose copy fails
// (unreachable, or back from a crash with lost updates) fails over to the
// next copy by itself. See replica.go for the details and the limits. Dial tells
// every shard its index and N (Hello); the shard records them in its data
// directory and refuses a client that disagrees, because changing N or the
// address order would misplace every stored key.
//
// # Elasticity: the shard map and moving key ranges
//
// The cluster holds a versioned shard map (ShardMap): its members, and for
// each of a fixed number of partitions the R members holding a copy,
// primary first. A cluster dialled from a fixed address list is version 1
// (StaticMapPartitions: partition p on member p mod S and the R-1 after
// it, the placement above); Dial gives that map to members that lack it, and later clients
// may name any members as seeds: Dial takes the newest map they hold.
// JoinCluster (`stratus psstore serve --join`) adds a member and
// DrainMember (`stratus psstore drain`) removes one, each as a sequence of
// moves of one copy of one partition, one map version per move. The
// number of partitions never changes, so keys never change partition:
// what moves is a partition's copy, with its KV pairs and its model slices
// (weights, optimizer state, update counters and incarnation, so the
// coordinator's identity checks see the same slice).
//
// Every request carries the map version it was routed with — each
// message of the long-lived push and pull streams its own, since a stream
// outlives map changes and one opened with an older map carries requests
// routed with a newer one. A member refuses a request made with an older
// map than its own with codes.Aborted "MOVED <version>" — except pushes
// and pulls of a slice whose partition the member still holds — and the
// client fetches the newer map from the members and runs the operation
// again with it (a push again only to the copies it had not reached). A
// refused push is refused alone: the pushes behind it on the stream are
// applied. A MOVED refusal never gives up a copy (see replica.go): the
// copy did not fail, it moved. A member given a request made with a newer
// map than its own waits until it has that map. Installing a map waits
// for the requests admitted under the older one to finish (a gate held by
// every request).
//
// The rule of a move of partition p's copy from S to D, map v to v+1:
//
//  1. S installs v+1. From then on S applies no request for p made with
//     map v (it refuses them: MOVED), and every write to p it
//     acknowledged has been applied.
//  2. S exports p (KV pairs, slices as consistent snapshots) into D,
//     which replaces whatever it held of p; every write is synced.
//  3. D installs v+1. Requests made with v+1 that reached D before this
//     waited, so D applies nothing for p before it holds S's final state.
//  4. Every other member installs v+1; then S drops its copy.
//
// So an acknowledged KV write is never lost by a move: one acknowledged
// by S is in the export, one made with v+1 is applied by D after it, and a
// write refused by S is re-sent, with v+1, to D (the copy in the same
// place of the owner list) and only to the copies that had not
// acknowledged it. A failure before step 3 installs v+2 with the copy
// still on S (which never dropped it). What a move may lose are pushes in
// flight to S's copy when it installed v+1: at most the push window per
// client, on that copy only — as when a client fails over from a copy
// (with R >= 2 the other copies have them). Every other push reaches every
// copy: one routed with v+1 waits at D (and at the other members) until
// they have v+1, so D applies it after S's final state, and the client
// keeps pushing to D's copy. A drained member stays in
// nothing but its own record: it answers MOVED until stopped. Only one
// membership change may run at a time.
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
