package suite

import (
	"fmt"
	"image/color"
	"math"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// nines places a percentile on the plot's x axis: -log10(1 - q/100), so 90 % is 1,
// 99 % is 2, 99.9 % is 3: every "nine" of the tail gets the same width.
func nines(q float64) float64 {
	if q >= 100 {
		return math.Inf(1)
	}
	return -math.Log10(1 - q/100)
}

// ninesTicks labels the x axis with percentiles.
type ninesTicks struct{}

func (ninesTicks) Ticks(lo, hi float64) []plot.Tick {
	var ts []plot.Tick
	for x := math.Floor(lo); x <= hi+1e-9; x++ {
		// 0 → "0%", 1 → "90%", 2 → "99%", 3 → "99.9%", …
		label := "0%"
		switch n := int(x); {
		case n == 1:
			label = "90%"
		case n >= 2:
			label = "99" + strings.TrimSuffix("."+strings.Repeat("9", n-2), ".") + "%"
		}
		ts = append(ts, plot.Tick{Value: x, Label: label})
		for _, m := range []float64{0.5} { // a minor tick half way in each nine
			if x+m <= hi {
				ts = append(ts, plot.Tick{Value: x + m})
			}
		}
	}
	return ts
}

// Series is one line of the latency plot.
type Series struct {
	Label string
	// Curve holds [percentile, µs] pairs as RunResult.Curve does.
	Curve [][2]float64
	// Dashed draws the line dashed (the baseline).
	Dashed bool
}

var palette = []color.RGBA{
	{0x1f, 0x77, 0xb4, 0xff}, {0xd6, 0x27, 0x28, 0xff}, {0x2c, 0xa0, 0x2c, 0xff}, {0xff, 0x7f, 0x0e, 0xff},
	{0x94, 0x67, 0xbd, 0xff}, {0x8c, 0x56, 0x4b, 0xff}, {0xe3, 0x77, 0xc2, 0xff}, {0x17, 0xbe, 0xcf, 0xff},
	{0xbc, 0xbd, 0x22, 0xff}, {0x7f, 0x7f, 0x7f, 0xff},
}

// WritePlot draws the latency percentile distribution of each series, HdrHistogram
// style (x: percentile on a log "nines" scale, y: latency on a log scale so that
// microseconds and seconds fit one picture), and saves it as a PNG.
func WritePlot(path, title string, series []Series) error {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "percentile"
	p.Y.Label.Text = "latency (ms)"
	p.X.Tick.Marker = ninesTicks{}
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = msTicks{}
	// The curves climb from left to right: the bottom right is where they are not.
	p.Legend.Top = false
	p.Legend.Left = false
	p.Add(plotter.NewGrid())
	maxX := 1.0
	for i, s := range series {
		var xys plotter.XYs
		for _, pt := range s.Curve {
			if pt[0] >= 100 || pt[1] <= 0 {
				continue // the maximum has no place on a nines axis; it is in the table
			}
			x := nines(pt[0])
			xys = append(xys, plotter.XY{X: x, Y: pt[1] / 1000})
			maxX = math.Max(maxX, x)
		}
		if len(xys) < 2 {
			continue
		}
		l, err := plotter.NewLine(xys)
		if err != nil {
			return fmt.Errorf("plot %s: %w", s.Label, err)
		}
		l.Color = palette[i%len(palette)]
		l.Width = vg.Points(1.6)
		if s.Dashed {
			l.Color = color.RGBA{0, 0, 0, 0xff}
			l.Dashes = []vg.Length{vg.Points(6), vg.Points(3)}
		}
		p.Add(l)
		p.Legend.Add(s.Label, l)
	}
	p.X.Min, p.X.Max = 0, math.Ceil(maxX)
	if err := p.Save(11*vg.Inch, 6.5*vg.Inch, path); err != nil {
		return fmt.Errorf("plot: %w", err)
	}
	return nil
}

// msTicks labels a log-scale millisecond axis at 1-2-5 steps.
type msTicks struct{}

func (msTicks) Ticks(lo, hi float64) []plot.Tick {
	var ts []plot.Tick
	for e := math.Floor(math.Log10(lo)); e <= math.Ceil(math.Log10(hi)); e++ {
		for _, m := range []float64{1, 2, 5} {
			v := m * math.Pow(10, e)
			if v < lo*0.999 || v > hi*1.001 {
				continue
			}
			label := ""
			if m == 1 || (hi/lo) < 1000 {
				label = strconv.FormatFloat(v, 'g', -1, 64)
			}
			ts = append(ts, plot.Tick{Value: v, Label: label})
		}
	}
	return ts
}
