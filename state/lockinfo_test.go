package state

import "testing"

// One identity: the user@host a lock records for this process is the one its
// snapshots and shared-cache entries are written under (Who).
func TestWho(t *testing.T) {
	if got, lock := Who(), NewLockInfo("stratus apply").Who(); got != lock {
		t.Errorf("Who() = %q, but this process's lock names %q", got, lock)
	}
	for _, tc := range []struct {
		i    LockInfo
		want string
	}{
		{LockInfo{User: "alice", Host: "laptop"}, "alice@laptop"},
		{LockInfo{Host: "laptop"}, "laptop"}, // a record that names no user
	} {
		if got := tc.i.Who(); got != tc.want {
			t.Errorf("%+v.Who() = %q, want %q", tc.i, got, tc.want)
		}
	}
}
