// Package lossplot draws a stage's test loss against time from the series the
// state records for it: one curve per grid search trial (or the one curve of a train
// stage), the best highlighted. It backs `stratus plot`.
package lossplot

import (
	"encoding/json"
	"fmt"
	"image/color"
	"math"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"

	"github.com/stratus-ml/stratus/operators"
)

// Point is one evaluation: seconds since the run's training started, test loss.
type Point struct{ T, Loss float64 }

// Curve is one training run's test loss over time.
type Curve struct {
	Trial  string                // "" for a train stage's own run
	Params string                // the trial's parameters, k=v k=v
	Status operators.TrialStatus // the trial's last status, if known
	Reason string
	Points []Point
	Best   bool
}

// Label names the curve in a legend.
func (c *Curve) Label() string {
	parts := []string{}
	if c.Trial != "" {
		parts = append(parts, c.Trial)
	} else {
		parts = append(parts, "test loss")
	}
	if c.Params != "" {
		parts = append(parts, c.Params)
	}
	switch {
	case c.Best:
		parts = append(parts, "(best)")
	case c.Status != "" && c.Status != operators.TrialDone:
		s := string(c.Status)
		if c.Reason != "" {
			s += ": " + c.Reason
		}
		parts = append(parts, "("+s+")")
	}
	return strings.Join(parts, " ")
}

// final is the curve's last loss.
func (c *Curve) final() float64 { return c.Points[len(c.Points)-1].Loss }

// FromSeries builds the curves from a stage's recorded series (operators.Event
// JSON objects, in order): "metric" events give the points, grouped by their
// "trial" label, and "trial" events the parameters and status. Points recorded
// before since (the start of the stage's last run, when known) are ignored, and
// when a curve's time goes backwards — the same trial trained again — only the
// later run is kept. best names the best trial ("" to pick the lowest final loss
// among trials that were neither killed, failed nor diverged). Curves come sorted by
// trial ID; those without points are dropped.
func FromSeries(raw []json.RawMessage, since time.Time, best string) ([]*Curve, error) {
	curves := map[string]*Curve{}
	get := func(id string) *Curve {
		c := curves[id]
		if c == nil {
			c = &Curve{Trial: id}
			curves[id] = c
		}
		return c
	}
	for i, r := range raw {
		var e operators.Event
		if err := json.Unmarshal(r, &e); err != nil {
			return nil, fmt.Errorf("series point %d: %w", i, err)
		}
		if !since.IsZero() && e.Time.Before(since) {
			continue
		}
		switch e.Kind {
		case "metric":
			loss, ok := operators.CurveLoss(e.Metrics)
			t, tok := e.Metrics["t"]
			// train reports a non-finite loss as -1.
			if !ok || !tok || loss < 0 || math.IsNaN(loss) || math.IsInf(loss, 0) {
				continue
			}
			c := get(e.Labels[operators.TrialLabel])
			if n := len(c.Points); n > 0 && t < c.Points[n-1].T {
				c.Points = c.Points[:0] // a new run of the same trial
			}
			c.Points = append(c.Points, Point{T: t, Loss: loss})
		case operators.KindTrial:
			te, ok := operators.DecodeTrial(e)
			if !ok {
				continue // names no trial
			}
			c := get(te.ID)
			c.Status, c.Reason = te.Status, te.Reason
			if p := te.ParamsText(); p != "" {
				c.Params = p
			}
		}
	}
	var out []*Curve
	for _, c := range curves {
		if len(c.Points) > 0 {
			out = append(out, c)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Trial < out[j].Trial })
	var pick *Curve
	for _, c := range out {
		switch {
		case best != "" && c.Trial == best:
			pick = c
		case best != "":
		case c.Status == operators.TrialKilled || c.Status == operators.TrialFailed || c.Reason == operators.ReasonDiverged:
		case pick == nil || c.final() < pick.final():
			pick = c
		}
	}
	if pick != nil {
		pick.Best = true
	}
	return out, nil
}

// Formats are the file extensions Save writes.
var Formats = []string{".png", ".svg", ".pdf"}

// Save draws the curves and writes the image to path, its format chosen by the
// extension (.png, .svg or .pdf). The y axis spans the curves that did not diverge
// (a diverged curve is clipped at the top), logarithmic when the losses span more
// than a factor of ten.
func Save(curves []*Curve, title, path string) error {
	ext := strings.ToLower(filepath.Ext(path))
	ok := false
	for _, f := range Formats {
		ok = ok || ext == f
	}
	if !ok {
		return fmt.Errorf("cannot write %s: give a file ending in %s", path, strings.Join(Formats, ", "))
	}
	if len(curves) == 0 {
		return fmt.Errorf("nothing to plot: no evaluation points recorded")
	}
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "seconds since training started"
	p.Y.Label.Text = "test log loss"
	p.Legend.Top = true
	p.Add(plotter.NewGrid())

	lo, hi, xmax := math.Inf(1), math.Inf(-1), 0.0
	for _, c := range curves {
		diverged := c.Reason == operators.ReasonDiverged
		for _, pt := range c.Points {
			xmax = math.Max(xmax, pt.T)
			lo = math.Min(lo, pt.Loss)
			if !diverged {
				hi = math.Max(hi, pt.Loss)
			}
		}
	}
	if math.IsInf(hi, -1) { // every curve diverged
		for _, c := range curves {
			for _, pt := range c.Points {
				hi = math.Max(hi, pt.Loss)
			}
		}
	}
	if hi > 10*lo && lo > 0 {
		p.Y.Scale = plot.LogScale{}
		p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	}
	// The best curve last, so it is drawn on top.
	ordered := append([]*Curve(nil), curves...)
	sort.SliceStable(ordered, func(i, j int) bool { return !ordered[i].Best && ordered[j].Best })
	for i, c := range ordered {
		xys := make(plotter.XYs, len(c.Points))
		for k, pt := range c.Points {
			xys[k] = plotter.XY{X: pt.T, Y: pt.Loss}
		}
		l, err := plotter.NewLine(xys)
		if err != nil {
			return fmt.Errorf("curve %s: %w", c.Label(), err)
		}
		l.Width = vg.Points(1)
		l.Color = faded(plotutil.Color(i))
		switch {
		case c.Best:
			l.Width = vg.Points(3)
			l.Color = color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff}
		case c.Status == operators.TrialKilled || c.Status == operators.TrialStopped || c.Status == operators.TrialFailed:
			l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		}
		p.Add(l)
		p.Legend.Add(c.Label(), l)
	}
	pad := (hi - lo) * 0.05
	if pad == 0 {
		pad = 0.01
	}
	p.Y.Min, p.Y.Max = math.Max(lo-pad, lo/2), hi+pad
	p.X.Min, p.X.Max = 0, xmax*1.02 // after Add, which widens the axes to the data

	p.Legend.ThumbnailWidth = vg.Points(24)
	p.Legend.TextStyle.Font.Size = vg.Points(8)
	if err := p.Save(10*vg.Inch, 6*vg.Inch, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// faded mixes c with white, so the best curve stands out.
func faded(c color.Color) color.Color {
	r, g, b, _ := c.RGBA()
	mix := func(x uint32) uint8 { return uint8((x>>8)/2 + 0x60) }
	return color.RGBA{R: mix(r), G: mix(g), B: mix(b), A: 0xff}
}
