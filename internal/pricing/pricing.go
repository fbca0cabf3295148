// Package pricing is the one place that turns billed function time, memory and
// requests — and psstore host hours — into dollars. Every figure Stratus prints in
// dollars (the apply summary, the dashboard, grid search's per-trial cost, plan
// estimates) comes from a Pricing value; nothing else multiplies GB-seconds by a price.
//
// It is a leaf package: it imports nothing of Stratus, so every layer may use it.
package pricing

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"time"
)

// Architectures a Lambda function may run on.
const (
	ARM64 = "arm64"
	X8664 = "x86_64"
)

// DefaultRegion is the region whose prices apply when none is known (the local
// backend, or a region missing from the table).
const DefaultRegion = "us-east-1"

// DefaultMemoryMB is a function's memory when none is configured: 1769 MB, the size
// at which Lambda gives a function one full vCPU.
const DefaultMemoryMB = 1769

// rate is one region's Lambda prices: USD per GB-second of billed duration for each
// architecture, and per request.
type rate struct {
	arm, x86, request float64
}

// rates are Lambda's on-demand prices (first pricing tier) per region, from
// aws.amazon.com/lambda/pricing. Regions not listed fall back to us-east-1 and say so
// through Pricing.Assumed.
var rates = map[string]rate{
	"us-east-1":      {arm: 0.0000133334, x86: 0.0000166667, request: 0.20 / 1e6},
	"us-east-2":      {arm: 0.0000133334, x86: 0.0000166667, request: 0.20 / 1e6},
	"us-west-1":      {arm: 0.0000133334, x86: 0.0000166667, request: 0.20 / 1e6},
	"us-west-2":      {arm: 0.0000133334, x86: 0.0000166667, request: 0.20 / 1e6},
	"ca-central-1":   {arm: 0.0000133334, x86: 0.0000166667, request: 0.20 / 1e6},
	"eu-west-1":      {arm: 0.0000133334, x86: 0.0000166667, request: 0.20 / 1e6},
	"eu-west-2":      {arm: 0.0000133334, x86: 0.0000166667, request: 0.20 / 1e6},
	"eu-central-1":   {arm: 0.0000133334, x86: 0.0000166667, request: 0.20 / 1e6},
	"eu-north-1":     {arm: 0.0000133334, x86: 0.0000166667, request: 0.20 / 1e6},
	"ap-northeast-1": {arm: 0.0000133334, x86: 0.0000166667, request: 0.20 / 1e6},
	"ap-southeast-1": {arm: 0.0000133334, x86: 0.0000166667, request: 0.20 / 1e6},
	"ap-southeast-2": {arm: 0.0000133334, x86: 0.0000166667, request: 0.20 / 1e6},
	"ap-south-1":     {arm: 0.0000133334, x86: 0.0000166667, request: 0.20 / 1e6},
	"sa-east-1":      {arm: 0.0000210000, x86: 0.0000262500, request: 0.20 / 1e6},
	"af-south-1":     {arm: 0.0000177344, x86: 0.0000221000, request: 0.28 / 1e6},
	"me-south-1":     {arm: 0.0000162613, x86: 0.0000206667, request: 0.25 / 1e6},
}

// Regions lists the regions with their own prices, sorted.
func Regions() []string {
	out := make([]string, 0, len(rates))
	for r := range rates {
		out = append(out, r)
	}
	sort.Strings(out)
	return out
}

// Pricing prices a run. The zero value is not useful; build one with For.
type Pricing struct {
	// Region and Arch are the prices' region and function architecture.
	Region, Arch string
	// PerGBSecond is USD per GB-second of billed function duration.
	PerGBSecond float64
	// PerRequest is USD per invocation.
	PerRequest float64
	// HostPerHour is USD per hour for each psstore host the run uses (0: not priced).
	HostPerHour float64
	// Estimated is true when no Lambda bill stands behind the figures (the local
	// backend): summaries then say "estimated Lambda cost".
	Estimated bool
	// Assumed is set when Region had no prices of its own and DefaultRegion's were used.
	Assumed bool
}

// For returns the prices of region and arch ("arm64" or "x86_64"; empty means
// arm64). An unknown region gets us-east-1's prices with Assumed set.
func For(region, arch string) (Pricing, error) {
	if arch == "" {
		arch = ARM64
	}
	if arch != ARM64 && arch != X8664 {
		return Pricing{}, fmt.Errorf("pricing: architecture %q is not %q or %q", arch, ARM64, X8664)
	}
	p := Pricing{Region: region, Arch: arch}
	if region == "" {
		p.Region = DefaultRegion
	}
	r, ok := rates[p.Region]
	if !ok {
		r, p.Assumed = rates[DefaultRegion], true
	}
	p.PerGBSecond, p.PerRequest = r.arm, r.request
	if arch == X8664 {
		p.PerGBSecond = r.x86
	}
	return p, nil
}

// Default is us-east-1 arm64, marked Estimated: the prices of the local backend's
// "what this would cost on Lambda".
func Default() Pricing {
	p, _ := For(DefaultRegion, ARM64)
	p.Estimated = true
	return p
}

// GBSeconds is the billable memory-time of d at memoryMB.
func GBSeconds(d time.Duration, memoryMB int) float64 {
	return d.Seconds() * float64(memoryMB) / 1024
}

// Duration is what gbSeconds of function time cost, without request charges.
func (p Pricing) Duration(gbSeconds float64) float64 { return gbSeconds * p.PerGBSecond }

// Requests is what n invocations cost.
func (p Pricing) Requests(n int) float64 { return float64(n) * p.PerRequest }

// Invoke is what one invocation billed for d at memoryMB costs, request included.
func (p Pricing) Invoke(d time.Duration, memoryMB int) float64 {
	return p.Duration(GBSeconds(d, memoryMB)) + p.PerRequest
}

// Function is what one function of memoryMB running for d costs, without the
// request charge: the running cost of a long-lived worker.
func (p Pricing) Function(d time.Duration, memoryMB int) float64 {
	return p.Duration(GBSeconds(d, memoryMB))
}

// Hosts is what n psstore hosts cost for d.
func (p Pricing) Hosts(n int, d time.Duration) float64 {
	return float64(n) * d.Hours() * p.HostPerHour
}

// Label names the figures for a summary: "Lambda cost", or "estimated Lambda cost"
// when no bill stands behind them.
func (p Pricing) Label() string {
	if p.Estimated {
		return "estimated Lambda cost"
	}
	return "Lambda cost"
}

// FormatUSD shows dollars as plans, budgets and progress lines do: two
// significant figures below a cent, cents above; "$0" for nothing.
func FormatUSD(v float64) string {
	if v <= 0 {
		return "$0"
	}
	decimals := 2
	if v < 0.01 {
		decimals = int(-math.Floor(math.Log10(v))) + 1
	}
	return "$" + strconv.FormatFloat(v, 'f', decimals, 64)
}
