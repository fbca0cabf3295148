package psstore

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// numStripes is the number of lock stripes per model slice. Stripe i covers
// a contiguous range of local indices; a sorted request visits the stripes in
// ascending order and holds one at a time, so requests never deadlock and
// pushes to different ranges run in parallel.
const numStripes = 64

// paddedRWMutex keeps each stripe lock on its own cache line.
type paddedRWMutex struct {
	sync.RWMutex
	_ [64 - 24]byte
}

// modelShard is one shard's slice of a model: the coordinates whose global
// key k has k % shardCount == shardIndex, at local index k / shardCount.
//
// Locking: a push holds snapMu for reading for its whole application and each
// coordinate's stripe for writing while that coordinate is updated; a pull
// holds stripes for reading. A checkpoint holds snapMu for writing, so it
// sees every push either entirely or not at all and its counters match its
// weights. Restore holds snapMu and every stripe for writing.
type modelShard struct {
	spec       ModelSpec // normalised; immutable
	shardIndex uint64
	shardCount uint64
	localDim   uint64
	stripeLen  uint64 // local indices per stripe (>= 1)

	snapMu  sync.RWMutex
	stripes [numStripes]paddedRWMutex
	// data holds the weights, interleaved with the optimizer state when
	// the optimizer has one: w[k] = data[k*stride], state[k] =
	// data[k*stride+1]. Interleaving puts a coordinate's weight and state
	// in one cache line, so a push of random keys misses the cache once
	// per key rather than twice.
	data   []float32
	stride uint64 // 1 (sgd) or 2

	pushes, updates, pulls, pulledKeys atomic.Uint64
	lastUpdateNano                     atomic.Int64

	// incarnation identifies this slice across restarts (see
	// ModelStatsResponse.incarnation); immutable after creation or load.
	incarnation uint64
	// lost is set for a slice that came back from a checkpoint older than
	// updates it had acknowledged, or that a client fenced off after failing
	// over from it (Fence); such a slice serves only stats and deletion.
	lost atomic.Pointer[string]

	// Dirty marking: before the first push after a checkpoint is applied,
	// the shard durably records "dirty since epoch e" (markDirty), so that
	// after a crash it can tell a slice that lost updates from one that
	// had none since its checkpoint. epoch is bumped by every snapshot
	// (under snapMu held for writing); dirty is cleared there too.
	dirtyMu sync.Mutex
	dirty   atomic.Bool
	epoch   atomic.Uint64

	// ckMu serialises checkpoints and deletion of this model.
	ckMu              sync.Mutex
	deleted           bool
	ckGen             uint64 // generation of the last checkpoint, under ckMu
	checkpoints       atomic.Uint64
	checkpointUpdates atomic.Uint64
	checkpointPushes  atomic.Uint64
	checkpointNano    atomic.Int64
}

// lostReason is why the slice lost updates, "" if it did not.
func (m *modelShard) lostReason() string {
	if p := m.lost.Load(); p != nil {
		return *p
	}
	return ""
}

// localDimFor is the number of global keys in [0, dim) placed on shard idx
// of n.
func localDimFor(dim, idx, n uint64) uint64 {
	if dim <= idx {
		return 0
	}
	return (dim-idx-1)/n + 1
}

// modelBytes is the memory a slice of localDim coordinates takes.
func modelBytes(spec ModelSpec, localDim uint64) uint64 {
	per := uint64(4)
	if spec.hasState() {
		per = 8
	}
	return per * localDim
}

// newModelShard allocates and initialises a slice; init "normal" costs one
// generator draw per coordinate.
func newModelShard(spec ModelSpec, idx, n uint64) *modelShard {
	m := &modelShard{spec: spec, shardIndex: idx, shardCount: n}
	m.localDim = localDimFor(spec.Dim, idx, n)
	m.stripeLen = (m.localDim + numStripes - 1) / numStripes
	if m.stripeLen == 0 {
		m.stripeLen = 1
	}
	m.stride = 1
	if spec.hasState() {
		m.stride = 2
	}
	m.data = make([]float32, m.localDim*m.stride)
	if spec.Init == InitNormal {
		for i := uint64(0); i < m.localDim; i++ {
			m.data[i*m.stride] = spec.initValue(i*n + idx)
		}
	}
	return m
}

// globalKey maps a local index back to the caller's key (for messages).
func (m *modelShard) globalKey(local uint64) uint64 { return local*m.shardCount + m.shardIndex }

// pull copies w[keys[i]] into out[i]. keys are sorted local indices < localDim.
func (m *modelShard) pull(keys []uint64, out []float32) {
	for i := 0; i < len(keys); {
		s := keys[i] / m.stripeLen
		end := (s + 1) * m.stripeLen
		j := i
		for j < len(keys) && keys[j] < end {
			j++
		}
		mu := &m.stripes[s]
		mu.RLock()
		data, stride := m.data, m.stride
		for x := i; x < j; x++ {
			out[x] = data[keys[x]*stride]
		}
		mu.RUnlock()
		i = j
	}
	m.pulls.Add(1)
	m.pulledKeys.Add(uint64(len(keys)))
}

// push applies one request's gradients. keys are sorted local indices <
// localDim; countPush says whether this part counts as a logical push.
// Before the first push after a checkpoint is applied, it durably records
// in db that the slice changed since that checkpoint (writeDirtyMark); a
// failure to record refuses the push.
func (m *modelShard) push(keys []uint64, grads []float32, countPush bool, db *badger.DB) error {
	m.snapMu.RLock()
	if !m.dirty.Load() {
		m.dirtyMu.Lock()
		if !m.dirty.Load() {
			if err := writeDirtyMark(db, m.spec.Name, m.epoch.Load()); err != nil {
				m.dirtyMu.Unlock()
				m.snapMu.RUnlock()
				return err
			}
			m.dirty.Store(true)
		}
		m.dirtyMu.Unlock()
	}
	m.apply(keys, grads, countPush)
	m.snapMu.RUnlock()
	return nil
}

// apply applies gradients under the stripes and counts them; the caller
// holds snapMu for reading, with the slice marked dirty.
func (m *modelShard) apply(keys []uint64, grads []float32, countPush bool) {
	for i := 0; i < len(keys); {
		s := keys[i] / m.stripeLen
		end := (s + 1) * m.stripeLen
		j := i
		for j < len(keys) && keys[j] < end {
			j++
		}
		mu := &m.stripes[s]
		mu.Lock()
		m.spec.applyUpdate(m.data, keys[i:j], grads[i:j])
		mu.Unlock()
		i = j
	}
	if countPush {
		m.pushes.Add(1)
	}
	m.updates.Add(uint64(len(keys)))
	m.lastUpdateNano.Store(time.Now().UnixNano())
}

// modelState is a consistent copy of a slice for a checkpoint.
type modelState struct {
	w, st                              []float32
	pushes, updates, pulls, pulledKeys uint64
	// epoch is the snapshot's epoch: every push marked dirty at an epoch
	// >= it is newer than the snapshot.
	epoch uint64
}

// snapshot copies the slice and its counters. It blocks pushes for the
// duration of the copy (about 1 ms per 4 M coordinates).
func (m *modelShard) snapshot() modelState {
	m.snapMu.Lock()
	defer m.snapMu.Unlock()
	s := modelState{
		w:          make([]float32, m.localDim),
		epoch:      m.epoch.Add(1),
		pushes:     m.pushes.Load(),
		updates:    m.updates.Load(),
		pulls:      m.pulls.Load(),
		pulledKeys: m.pulledKeys.Load(),
	}
	m.dirty.Store(false)
	if m.stride == 1 {
		copy(s.w, m.data)
		return s
	}
	s.st = make([]float32, m.localDim)
	for k := range s.w {
		s.w[k], s.st[k] = m.data[2*k], m.data[2*k+1]
	}
	return s
}

// restore replaces the slice and counters with s (same lengths).
func (m *modelShard) restore(s modelState) {
	m.snapMu.Lock()
	for i := range m.stripes {
		m.stripes[i].Lock()
	}
	if m.stride == 1 {
		copy(m.data, s.w)
	} else {
		for k := range s.w {
			m.data[2*k], m.data[2*k+1] = s.w[k], s.st[k]
		}
	}
	m.pushes.Store(s.pushes)
	m.updates.Store(s.updates)
	m.pulls.Store(s.pulls)
	m.pulledKeys.Store(s.pulledKeys)
	for i := range m.stripes {
		m.stripes[i].Unlock()
	}
	m.snapMu.Unlock()
}

// dense copies local coordinates [off, off+len(out)) into out.
func (m *modelShard) dense(off uint64, out []float32) {
	end := off + uint64(len(out))
	for s := off / m.stripeLen; s*m.stripeLen < end && s < numStripes; s++ {
		lo := max(s*m.stripeLen, off)
		hi := min((s+1)*m.stripeLen, end)
		mu := &m.stripes[s]
		mu.RLock()
		if m.stride == 1 {
			copy(out[lo-off:hi-off], m.data[lo:hi])
		} else {
			for k := lo; k < hi; k++ {
				out[k-off] = m.data[2*k]
			}
		}
		mu.RUnlock()
	}
}
