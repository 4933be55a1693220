package harness

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// plot draws, with gnuplot, the time to first file of every method
// (bench-ttff.png) and the daemon's memory and the mount time against
// the number of files (bench-scaling.png) into dir.
func plot(res *Result, dir string, log *slog.Logger) error {
	if !have("gnuplot") {
		return errors.New("gnuplot is not installed")
	}
	work, err := os.MkdirTemp("", "ocifs-bench-plot-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	var script strings.Builder
	script.WriteString("set terminal pngcairo size 960,540 font 'sans,10'\nset grid ytics\nset style fill solid 0.7 border -1\n")
	smoke := ""
	if res.Smoke {
		smoke = " [SMOKE RUN]"
	}

	// Time to first file: one bar per method, log scale.
	var ttff strings.Builder
	for _, r := range rowsOf(res, "ttff") {
		if len(r.Samples) == 0 {
			continue
		}
		lo, hi := r.Range()
		name := r.Name
		if s, ok := shortNames[name]; ok {
			name = s
		}
		color := "0x999999"
		if strings.HasPrefix(name, "ocifs") {
			color = "0x2b6cb0"
		}
		fmt.Fprintf(&ttff, "%q %g %g %g %s %q\n", name, r.Median(), lo, hi, color, fmtSeconds(r.Median()))
	}
	if ttff.Len() > 0 {
		if err := os.WriteFile(filepath.Join(work, "ttff.dat"), []byte(ttff.String()), 0o644); err != nil {
			return err
		}
		scale := ""
		if len(res.Scales) > 0 {
			scale = fmt.Sprintf(", %s files", thousands(res.Scales[0].Totals.Files))
		}
		fmt.Fprintf(&script, `set output %q
set title "Time to first file (cat /etc/os-release from nothing)%s: median, min–max%s"
set logscale y
set ylabel "seconds (log scale)"
set xtics rotate by -20 nomirror
set boxwidth 0.6
set key off
set yrange [0.005:*]
set bmargin 6
plot %q using 0:2:5:xtic(1) with boxes lc rgb variable, '' using 0:2:3:4 with yerrorbars lc rgb "black" pt -1, '' using 0:($4*1.4):6 with labels
unset logscale y
unset yrange
unset xtics
set xtics
set bmargin
`, filepath.Join(abs, "bench-ttff.png"), scale, smoke, filepath.Join(work, "ttff.dat"))
	}

	// Scaling: memory and mount time against the number of files.
	var sc strings.Builder
	for _, s := range res.Scales {
		get := func(col string) float64 {
			for _, r := range rowsOf(res, "scaling") {
				if r.Name == s.Scale && r.Column == col && len(r.Samples) > 0 {
					return r.Median()
				}
			}
			return -1
		}
		rss, warm, cold, cache := get("daemon peak RSS after that"), get("warm index: mount → first byte"), get("cold index: mount → first byte"), get("index cache on disk")
		if rss < 0 && warm < 0 {
			continue
		}
		files := s.Totals.Files + s.Totals.Symlinks + s.Totals.Hardlinks
		fmt.Fprintf(&sc, "%d %s %s %s %s\n", files, orNaN(rss/1024, rss), orNaN(cache/1024, cache), orNaN(warm*1000, warm), orNaN(cold, cold))
	}
	if sc.Len() > 0 {
		lines := strings.Split(strings.TrimSpace(sc.String()), "\n")
		sortByFirstField(lines)
		if err := os.WriteFile(filepath.Join(work, "scaling.dat"), []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
			return err
		}
		dat := filepath.Join(work, "scaling.dat")
		fmt.Fprintf(&script, `set output %q
set multiplot layout 1,2 title "ocifs as the image grows (same image shape, %s)%s" margins 0.08,0.92,0.22,0.88 spacing 0.14
set logscale x
set xlabel "files in the image (log scale)"
set key below
set yrange [0:*]
set y2range [0:*]
set title "memory"
set ylabel "MiB"
plot %q using 1:2 with linespoints lw 2 pt 7 title "daemon peak RSS after find + full read", '' using 1:3 with linespoints lw 2 pt 5 title "index cache on disk"
set title "time to first file"
set ylabel "warm index (ms)"
set y2label "cold index (s)"
set y2tics
set ytics nomirror
plot %q using 1:4 axes x1y1 with linespoints lw 2 pt 7 title "warm index: mount → first byte (ms, left)", '' using 1:5 axes x1y2 with linespoints lw 2 pt 5 title "cold index: mount → first byte (s, right)"
unset multiplot
`, filepath.Join(abs, "bench-scaling.png"), "seed "+fmt.Sprint(res.Settings.Seed), smoke, dat, dat)
	}
	if ttff.Len() == 0 && sc.Len() == 0 {
		return errors.New("nothing to plot")
	}
	gp := filepath.Join(work, "plots.gp")
	if err := os.WriteFile(gp, []byte(script.String()), 0o644); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := shell(ctx, "gnuplot "+quote(gp)); err != nil {
		return fmt.Errorf("gnuplot: %w", err)
	}
	log.Info("plots written", "dir", dir)
	return nil
}

func orNaN(v, raw float64) string {
	if raw < 0 {
		return "NaN"
	}
	return fmt.Sprintf("%g", v)
}

func sortByFirstField(lines []string) {
	key := func(s string) int {
		var n int
		_, _ = fmt.Sscan(s, &n)
		return n
	}
	slices.SortFunc(lines, func(a, b string) int { return key(a) - key(b) })
}
