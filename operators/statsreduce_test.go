package operators

import "testing"

// Where statistics are reduced: never through the store without shards;
// by default only for large waves on a remote blob store; as the
// environment says otherwise; a bad value is an error naming the variable.
func TestReduceStatsInStore(t *testing.T) {
	local := TaskEnv{Blob: "file:///tmp/x", PSStore: []string{"a"}}
	remote := TaskEnv{Blob: "s3://b/p", PSStore: []string{"a"}}
	for _, c := range []struct {
		env   string
		te    TaskEnv
		tasks int
		want  bool
	}{
		{"", TaskEnv{Blob: "s3://b/p"}, 500, false},
		{"psstore", TaskEnv{Blob: "s3://b/p"}, 500, false},
		{"", remote, StatsReduceMinTasks, true},
		{"", remote, StatsReduceMinTasks - 1, false},
		{"", local, 500, false},
		{"auto", remote, 500, true},
		{"psstore", local, 1, true},
		{"coordinator", remote, 500, false},
	} {
		t.Setenv(EnvStatsReduce, c.env)
		got, err := ReduceStatsInStore(c.te, c.tasks)
		if err != nil || got != c.want {
			t.Errorf("%s=%q, %+v, %d tasks: %v, %v; want %v", EnvStatsReduce, c.env, c.te, c.tasks, got, err, c.want)
		}
	}
	t.Setenv(EnvStatsReduce, "yes")
	if _, err := ReduceStatsInStore(remote, 500); err == nil {
		t.Errorf("%s=yes was accepted", EnvStatsReduce)
	}
}
