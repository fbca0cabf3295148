package pricing

import (
	"math"
	"testing"
	"time"
)

func TestFor(t *testing.T) {
	for _, tc := range []struct {
		region, arch string
		perGBs       float64
		assumed      bool
		err          bool
	}{
		{"us-east-1", "arm64", 0.0000133334, false, false},
		{"us-east-1", "x86_64", 0.0000166667, false, false},
		{"", "", 0.0000133334, false, false},
		{"sa-east-1", "x86_64", 0.00002625, false, false},
		{"xx-nowhere-9", "arm64", 0.0000133334, true, false},
		{"us-east-1", "mips", 0, false, true},
	} {
		p, err := For(tc.region, tc.arch)
		if (err != nil) != tc.err {
			t.Fatalf("For(%q, %q) error %v, want error %v", tc.region, tc.arch, err, tc.err)
		}
		if err != nil {
			continue
		}
		if p.PerGBSecond != tc.perGBs || p.Assumed != tc.assumed {
			t.Errorf("For(%q, %q) = %+v, want %g per GB-s, assumed %v", tc.region, tc.arch, p, tc.perGBs, tc.assumed)
		}
	}
}

func TestInvoke(t *testing.T) {
	p, _ := For("us-east-1", "arm64")
	// 1 s at 1024 MB is one GB-second plus one request.
	got := p.Invoke(time.Second, 1024)
	want := 0.0000133334 + 0.20/1e6
	if math.Abs(got-want) > 1e-15 {
		t.Fatalf("Invoke(1s, 1024) = %g, want %g", got, want)
	}
	if g := GBSeconds(500*time.Millisecond, 2048); g != 1 {
		t.Fatalf("GBSeconds(0.5s, 2048) = %g, want 1", g)
	}
	p.HostPerHour = 0.10
	if h := p.Hosts(2, 30*time.Minute); math.Abs(h-0.10) > 1e-12 {
		t.Fatalf("Hosts(2, 30m) = %g, want 0.10", h)
	}
	if Default().Label() != "estimated Lambda cost" || p.Label() != "Lambda cost" {
		t.Fatalf("labels: %q, %q", Default().Label(), p.Label())
	}
}
