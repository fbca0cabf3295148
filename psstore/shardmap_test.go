package psstore

import (
	"fmt"
	"slices"
	"testing"
)

func TestStaticMapIsTheOldPlacement(t *testing.T) {
	addrs := []string{"a:1", "b:1", "c:1"}
	m := StaticMap(addrs, 2)
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	if m.Version != 1 || m.Partitions != 3 {
		t.Fatalf("version %d, %d partitions", m.Version, m.Partitions)
	}
	for p := range 3 {
		for j := range 2 {
			if got, want := m.Owners[p][j], addrs[(p+j)%3]; got != want {
				t.Errorf("partition %d copy %d on %s, want %s", p, j, got, want)
			}
			want := ReplicaName("m", p)
			if j == 0 {
				want = "m"
			}
			if got := m.SliceName("m", p, m.Owners[p][j]); got != want {
				t.Errorf("partition %d copy %d named %q, want %q", p, j, got, want)
			}
		}
	}
}

// checkBalanced fails unless every member holds within one copy of the
// others.
func checkBalanced(t *testing.T, m *ShardMap) {
	t.Helper()
	l := m.load()
	lo, hi := 1<<30, 0
	for _, n := range l {
		lo, hi = min(lo, n), max(hi, n)
	}
	if hi-lo > 1 {
		t.Errorf("map v%d unbalanced: %v", m.Version, l)
	}
}

func TestJoinAndDrainPlans(t *testing.T) {
	for _, tc := range []struct{ n, r int }{{2, 2}, {2, 1}, {3, 2}, {4, 2}, {4, 3}, {1, 1}, {8, 2}} {
		t.Run(fmt.Sprintf("n%d_r%d", tc.n, tc.r), func(t *testing.T) {
			var addrs []string
			for i := range tc.n {
				addrs = append(addrs, fmt.Sprintf("s%d:1", i))
			}
			m := StaticMap(addrs, tc.r)
			joined, moves, err := m.Join("new:1")
			if err != nil {
				t.Fatal(err)
			}
			if joined.Version != 2 || len(joined.Members) != tc.n+1 {
				t.Fatalf("joined map v%d with %d members", joined.Version, len(joined.Members))
			}
			cur := joined
			for _, mv := range moves {
				if mv.To != "new:1" {
					t.Errorf("move %v does not go to the new member", mv)
				}
				if cur, err = cur.Apply(mv); err != nil {
					t.Fatal(err)
				}
			}
			if want := tc.n*tc.r/(tc.n+1) - 1; len(cur.Hosted("new:1")) < want {
				t.Errorf("new member holds %d copies after the join, want at least %d", len(cur.Hosted("new:1")), want)
			}
			checkBalanced(t, cur)
			if tc.n <= tc.r-1 || len(cur.Members)-1 < tc.r {
				return
			}
			// Drain an original member.
			dmoves, final, err := cur.Drain("s0:1")
			if err != nil {
				t.Fatal(err)
			}
			after := cur
			for _, mv := range dmoves {
				if after, err = after.Apply(mv); err != nil {
					t.Fatal(err)
				}
			}
			if len(after.Hosted("s0:1")) != 0 {
				t.Errorf("drained member still holds %v", after.Hosted("s0:1"))
			}
			if _, ok := final.Member("s0:1"); ok || final.Version != after.Version+1 {
				t.Errorf("final map v%d (after moves v%d) still lists s0:1: %v", final.Version, after.Version, final.Members)
			}
			if err := final.Validate(); err != nil {
				t.Fatal(err)
			}
			// A member with a home keeps its name rule: a slice moved onto
			// a member that is not its home is replica-named.
			for p, o := range final.Owners {
				for _, a := range o {
					mb, _ := final.Member(a)
					if (final.SliceName("m", p, a) == "m") != (mb.Home == p) {
						t.Errorf("partition %d on %s (home %d) named %q", p, a, mb.Home, final.SliceName("m", p, a))
					}
				}
			}
		})
	}
}

func TestMapRefusals(t *testing.T) {
	m := StaticMap([]string{"a:1", "b:1"}, 2)
	if _, _, err := m.Join("a:1"); err == nil {
		t.Error("joining a member twice was accepted")
	}
	if _, _, err := m.Drain("a:1"); err == nil {
		t.Error("draining below R members was accepted")
	}
	if _, _, err := m.Drain("zz:1"); err == nil {
		t.Error("draining a stranger was accepted")
	}
	if _, err := m.Apply(Move{Partition: 0, From: "a:1", To: "b:1"}); err == nil {
		t.Error("a move putting two copies on one member was accepted")
	}
	b, err := MarshalMap(m)
	if err != nil {
		t.Fatal(err)
	}
	got, err := UnmarshalMap(b)
	if err != nil || !slices.Equal(got.Addrs(), m.Addrs()) || got.Version != 1 {
		t.Fatalf("round trip: %v %v", got, err)
	}
	bad := m.Clone()
	bad.Owners[1] = []string{"a:1", "a:1"}
	if err := bad.Validate(); err == nil {
		t.Error("two copies on one member validated")
	}
	for _, in := range []string{`{}`, `{"version":1,"partitions":1,"replicas":1,"members":[],"owners":[["x"]]}`, `nope`} {
		if _, err := UnmarshalMap([]byte(in)); err == nil {
			t.Errorf("%s decoded", in)
		}
	}
}
