package psstore

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// ShardMap is the cluster's placement: which member holds which copies of
// which partition, at which version. The cluster holds it (every member
// stores the newest version it was given); clients fetch it from any member
// and are redirected (ErrMoved) when theirs is older than a member's.
//
// The number of partitions is fixed for the life of the data (chosen when
// the cluster is founded: the shards' --partitions, by default the shard
// count of the cluster's first map): model coordinate k belongs to
// partition k mod Partitions, KV key to fnv1a64(key) mod Partitions. What
// changes is where the partitions live: a join or a drain moves copies of
// partitions between members, one copy per map version.
//
// A cluster started from a fixed address list (Dial without a map) is
// version 1 of StaticMap(addrs, r): partition p on member p and its R-1
// successors, as before maps existed.
type ShardMap struct {
	Version    uint64   `json:"version"`
	Partitions int      `json:"partitions"`
	Replicas   int      `json:"replicas"`
	Members    []Member `json:"members"`
	// Owners lists, per partition, the addresses of the members holding a
	// copy, primary first.
	Owners [][]string `json:"owners"`
}

// Member is one shard process of the cluster.
type Member struct {
	Addr string `json:"addr"`
	// Home is the partition whose primary slices this member stores under
	// the model's own name (the member's index in the first map), or -1 for
	// a member that joined later. Every other slice a member holds is
	// stored under ReplicaName(model, partition).
	Home int `json:"home"`
}

// StaticMap is version 1 of the map of a cluster dialled as the ordered
// address list addrs with r copies of every partition.
func StaticMap(addrs []string, r int) *ShardMap {
	return StaticMapPartitions(addrs, r, len(addrs))
}

// StaticMapPartitions is StaticMap with parts partitions (at least
// len(addrs)): partition p on member p mod len(addrs) and the R-1 after it,
// member i's home partition i.
func StaticMapPartitions(addrs []string, r, parts int) *ShardMap {
	n := len(addrs)
	r = max(1, min(r, n))
	parts = max(parts, n)
	m := &ShardMap{Version: 1, Partitions: parts, Replicas: r}
	for i, a := range addrs {
		m.Members = append(m.Members, Member{Addr: a, Home: i})
	}
	for p := range parts {
		o := make([]string, r)
		for j := range r {
			o[j] = addrs[(p+j)%n]
		}
		m.Owners = append(m.Owners, o)
	}
	return m
}

// Clone returns a deep copy of m.
func (m *ShardMap) Clone() *ShardMap {
	c := *m
	c.Members = slices.Clone(m.Members)
	c.Owners = make([][]string, len(m.Owners))
	for p, o := range m.Owners {
		c.Owners[p] = slices.Clone(o)
	}
	return &c
}

// Member returns the member at addr.
func (m *ShardMap) Member(addr string) (Member, bool) {
	for _, mb := range m.Members {
		if mb.Addr == addr {
			return mb, true
		}
	}
	return Member{}, false
}

// Hosted returns the partitions addr holds a copy of, in order.
func (m *ShardMap) Hosted(addr string) []int {
	var out []int
	for p, o := range m.Owners {
		if slices.Contains(o, addr) {
			out = append(out, p)
		}
	}
	return out
}

// SliceName is the name under which member addr stores its copy of
// partition p of model.
func (m *ShardMap) SliceName(model string, p int, addr string) string {
	if mb, ok := m.Member(addr); ok && mb.Home == p {
		return model
	}
	return ReplicaName(model, p)
}

// Validate checks m's invariants: every partition has Replicas copies on
// distinct members, every owner is a member, homes are distinct partitions.
func (m *ShardMap) Validate() error {
	if m.Version == 0 {
		return errors.New("shard map: version 0")
	}
	if m.Partitions < 1 || len(m.Owners) != m.Partitions {
		return fmt.Errorf("shard map v%d: %d partitions but %d owner lists", m.Version, m.Partitions, len(m.Owners))
	}
	if m.Replicas < 1 {
		return fmt.Errorf("shard map v%d: %d replicas", m.Version, m.Replicas)
	}
	addrs := map[string]bool{}
	homes := map[int]string{}
	for _, mb := range m.Members {
		if mb.Addr == "" || addrs[mb.Addr] {
			return fmt.Errorf("shard map v%d: member address %q is empty or listed twice", m.Version, mb.Addr)
		}
		addrs[mb.Addr] = true
		if mb.Home >= m.Partitions || mb.Home < -1 {
			return fmt.Errorf("shard map v%d: member %s has home partition %d of %d", m.Version, mb.Addr, mb.Home, m.Partitions)
		}
		if mb.Home >= 0 {
			if o, dup := homes[mb.Home]; dup {
				return fmt.Errorf("shard map v%d: members %s and %s share home partition %d", m.Version, o, mb.Addr, mb.Home)
			}
			homes[mb.Home] = mb.Addr
		}
	}
	for p, o := range m.Owners {
		if len(o) != m.Replicas {
			return fmt.Errorf("shard map v%d: partition %d has %d copies, want %d", m.Version, p, len(o), m.Replicas)
		}
		for i, a := range o {
			if !addrs[a] {
				return fmt.Errorf("shard map v%d: partition %d is on %s, which is not a member", m.Version, p, a)
			}
			if slices.Index(o, a) != i {
				return fmt.Errorf("shard map v%d: partition %d has two copies on %s", m.Version, p, a)
			}
		}
	}
	return nil
}

// Move is one copy of one partition changing member.
type Move struct {
	Partition int
	From, To  string
}

func (mv Move) String() string {
	return fmt.Sprintf("partition %d: %s → %s", mv.Partition, mv.From, mv.To)
}

// Apply returns the map after mv, one version later.
func (m *ShardMap) Apply(mv Move) (*ShardMap, error) {
	n := m.Clone()
	n.Version++
	if mv.Partition < 0 || mv.Partition >= m.Partitions {
		return nil, fmt.Errorf("move %v: no such partition (of %d)", mv, m.Partitions)
	}
	o := n.Owners[mv.Partition]
	i := slices.Index(o, mv.From)
	if i < 0 {
		return nil, fmt.Errorf("move %v: %s holds no copy of it", mv, mv.From)
	}
	if slices.Contains(o, mv.To) {
		return nil, fmt.Errorf("move %v: %s already holds a copy", mv, mv.To)
	}
	if _, ok := n.Member(mv.To); !ok {
		return nil, fmt.Errorf("move %v: %s is not a member", mv, mv.To)
	}
	o[i] = mv.To
	return n, n.Validate()
}

// load counts the copies each member holds.
func (m *ShardMap) load() map[string]int {
	l := map[string]int{}
	for _, mb := range m.Members {
		l[mb.Addr] = 0
	}
	for _, o := range m.Owners {
		for _, a := range o {
			l[a]++
		}
	}
	return l
}

// Join returns the map with addr as a new member (one version later, the
// member holding nothing yet) and the moves that even out the copies per
// member, most loaded members first. Applied in order, each move is one
// more version.
func (m *ShardMap) Join(addr string) (*ShardMap, []Move, error) {
	if addr == "" {
		return nil, nil, errors.New("join: empty address")
	}
	if _, ok := m.Member(addr); ok {
		return nil, nil, fmt.Errorf("join: %s is already a member of the cluster (map version %d)", addr, m.Version)
	}
	n := m.Clone()
	n.Version++
	n.Members = append(n.Members, Member{Addr: addr, Home: -1})
	if err := n.Validate(); err != nil {
		return nil, nil, err
	}
	total := m.Partitions * m.Replicas
	want := total / len(n.Members) // the new member's share
	cur := n.Clone()
	var moves []Move
	for len(moves) < want {
		l := cur.load()
		// The most loaded member with a partition addr lacks.
		best, bp := "", -1
		for _, mb := range cur.Members {
			if mb.Addr == addr || (best != "" && l[mb.Addr] <= l[best]) {
				continue
			}
			for _, p := range cur.Hosted(mb.Addr) {
				if !slices.Contains(cur.Owners[p], addr) {
					best, bp = mb.Addr, p
					break
				}
			}
		}
		if bp < 0 || l[best] <= l[addr]+1 {
			break
		}
		mv := Move{Partition: bp, From: best, To: addr}
		next, err := cur.Apply(mv)
		if err != nil {
			return nil, nil, err
		}
		moves, cur = append(moves, mv), next
	}
	return n, moves, nil
}

// Drain returns the moves that take every copy off addr (each to the least
// loaded member lacking that partition) and the map after them, one version
// further, without addr. It fails when the other members cannot hold R
// distinct copies of every partition.
func (m *ShardMap) Drain(addr string) ([]Move, *ShardMap, error) {
	if _, ok := m.Member(addr); !ok {
		return nil, nil, fmt.Errorf("drain: %s is not a member of the cluster (map version %d; members %s)", addr, m.Version, strings.Join(m.Addrs(), ", "))
	}
	if len(m.Members)-1 < m.Replicas {
		return nil, nil, fmt.Errorf("drain: %s: the other %d members cannot hold %d copies of every partition: join a shard first (stratus psstore serve --join)", addr, len(m.Members)-1, m.Replicas)
	}
	cur := m
	var moves []Move
	for _, p := range m.Hosted(addr) {
		l := cur.load()
		to := ""
		for _, mb := range cur.Members {
			if mb.Addr == addr || slices.Contains(cur.Owners[p], mb.Addr) {
				continue
			}
			if to == "" || l[mb.Addr] < l[to] {
				to = mb.Addr
			}
		}
		mv := Move{Partition: p, From: addr, To: to}
		next, err := cur.Apply(mv)
		if err != nil {
			return nil, nil, err
		}
		moves, cur = append(moves, mv), next
	}
	final := cur.Clone()
	final.Version++
	final.Members = slices.DeleteFunc(final.Members, func(mb Member) bool { return mb.Addr == addr })
	return moves, final, final.Validate()
}

// Addrs returns the members' addresses in map order.
func (m *ShardMap) Addrs() []string {
	out := make([]string, len(m.Members))
	for i, mb := range m.Members {
		out[i] = mb.Addr
	}
	return out
}

// MarshalMap encodes m (JSON) for the wire and the data directory.
func MarshalMap(m *ShardMap) ([]byte, error) { return json.Marshal(m) }

// UnmarshalMap decodes and validates a map.
func UnmarshalMap(b []byte) (*ShardMap, error) {
	var m ShardMap
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("shard map: %w", err)
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return &m, nil
}
