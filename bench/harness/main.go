package harness

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Config is what a run measures and where it writes.
type Config struct {
	Ocifs       string        // the ocifs binary
	Out         string        // generated layouts, work trees, results
	Seed        uint64        // of the generated images
	Scale       string        // the image every scenario runs on
	Scaling     []string      // the scales of the scaling table (Scale among them is reused)
	Reps        int           // repetitions of a method
	RepsSlow    int           // … whose first repetition took longer than Slow
	Slow        time.Duration //
	Limit       time.Duration // any one step
	Archive     time.Duration // an archivemount step
	Random      int           // files in the random-read scenario
	Deadline    time.Time     // the whole run should end by then; zero: no budget
	Only        map[string]bool
	Doc         string // the markdown file to update; empty: none
	PlotDir     string // where the PNGs go; empty: none
	Smoke       bool   // say in the doc that these are smoke-run numbers
	KeepReclaim bool   // leave the kernel's proactive reclaim running (see proactiveReclaim)
	GoBench     string // output of the packages' go test benchmarks, to include
	Log         *slog.Logger
}

// scenarios, in the order they run and are reported.
var scenarios = []string{"ttff", "index", "export", "traverse", "random", "disk", "scaling"}

// Main parses the flags of `ocifs-bench run` and runs.
func Main(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("run", flag.ExitOnError)
	var cfg Config
	var scaling, only string
	var verbose bool
	fs.StringVar(&cfg.Ocifs, "ocifs", "bin/ocifs", "the ocifs binary")
	fs.StringVar(&cfg.Out, "out", "bench/out", "directory for layouts, work trees and results")
	fs.Uint64Var(&cfg.Seed, "seed", 1, "seed of the generated images")
	fs.StringVar(&cfg.Scale, "scale", "100k", "number of files of the image every scenario runs on")
	fs.StringVar(&scaling, "scaling", "10k,100k,300k", "scales of the scaling table (comma separated; empty: none)")
	fs.IntVar(&cfg.Reps, "reps", 5, "repetitions of each method")
	fs.IntVar(&cfg.RepsSlow, "reps-slow", 3, "repetitions of a method whose first repetition took longer than -slow")
	fs.DurationVar(&cfg.Slow, "slow", 3*time.Second, "see -reps-slow")
	fs.DurationVar(&cfg.Limit, "limit", 10*time.Minute, "time limit of any one timed step")
	fs.DurationVar(&cfg.Archive, "archivemount-limit", 30*time.Second, "time limit of a timed archivemount step")
	fs.IntVar(&cfg.Random, "random", 1000, "number of files read in the random-read scenario")
	budget := fs.Duration("budget", 0, "time budget of the run: scenarios get shares of it and cut repetitions when theirs is spent (0: none)")
	deadline := fs.Int64("deadline", 0, "like -budget, as a Unix time (hack/bench.sh passes its own start + 20m minus a margin)")
	fs.StringVar(&only, "only", "", "run only these scenarios (comma separated: "+strings.Join(scenarios, ",")+")")
	fs.StringVar(&cfg.Doc, "doc", "", "update the generated section of this markdown file (e.g. docs/benchmarks.md)")
	fs.StringVar(&cfg.PlotDir, "plots", "", "write the PNG plots into this directory (e.g. docs)")
	fs.BoolVar(&cfg.KeepReclaim, "keep-reclaim", false, "leave the kernel's proactive reclaim (a DAMON pageout scheme) running: it evicts idle page cache during warm rows")
	fs.BoolVar(&cfg.Smoke, "smoke", false, "mark the written section as a smoke run")
	fs.StringVar(&cfg.GoBench, "gobench", "", "include this file (go test -bench output of the packages) in the section")
	fs.BoolVar(&verbose, "v", false, "log every sample")
	_ = fs.Parse(args)

	switch {
	case *deadline > 0:
		cfg.Deadline = time.Unix(*deadline, 0)
	case *budget > 0:
		cfg.Deadline = time.Now().Add(*budget)
	}
	level := slog.LevelWarn
	if verbose {
		level = slog.LevelInfo
	}
	cfg.Log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	for _, s := range strings.Split(scaling, ",") {
		if s = strings.TrimSpace(s); s != "" {
			cfg.Scaling = append(cfg.Scaling, s)
		}
	}
	if only != "" {
		cfg.Only = map[string]bool{}
		for _, s := range strings.Split(only, ",") {
			s = strings.TrimSpace(s)
			if !contains(scenarios, s) {
				return fmt.Errorf("unknown scenario %q (have %s)", s, strings.Join(scenarios, ","))
			}
			cfg.Only[s] = true
		}
	}
	var err error
	if cfg.Ocifs, err = filepath.Abs(cfg.Ocifs); err != nil {
		return err
	}
	if cfg.Out, err = filepath.Abs(cfg.Out); err != nil {
		return err
	}
	res, err := Run(ctx, &cfg)
	if res == nil {
		return err
	}
	if werr := writeOutputs(res, &cfg); werr != nil && err == nil {
		err = werr
	}
	return err
}

// ReportMain rewrites the markdown section and the plots from a JSON
// result of an earlier run.
func ReportMain(args []string) error {
	fs := flag.NewFlagSet("report", flag.ExitOnError)
	var cfg Config
	in := fs.String("json", "bench/out/results/latest.json", "the result to report")
	fs.StringVar(&cfg.Doc, "doc", "docs/benchmarks.md", "markdown file to update; empty: print the section to stdout")
	fs.StringVar(&cfg.PlotDir, "plots", "docs", "directory for the PNG plots; empty: none")
	_ = fs.Parse(args)
	b, err := os.ReadFile(*in)
	if err != nil {
		return err
	}
	var res Result
	if err := json.Unmarshal(b, &res); err != nil {
		return fmt.Errorf("decode %q: %w", *in, err)
	}
	cfg.Log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	cfg.Smoke = res.Smoke
	if cfg.Doc == "" {
		fmt.Print(markdown(&res, cfg.PlotDir != ""))
	}
	return report(&res, &cfg)
}

// writeOutputs saves the JSON result and, when asked, the doc section
// and the plots.
func writeOutputs(res *Result, cfg *Config) error {
	dir := filepath.Join(cfg.Out, "results")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	name := filepath.Join(dir, res.Started.Format("20060102-150405")+".json")
	if err := os.WriteFile(name, b, 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "latest.json"), b, 0o644); err != nil {
		return err
	}
	md := markdown(res, cfg.PlotDir != "")
	if err := os.WriteFile(filepath.Join(dir, "latest.md"), []byte(md), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "results: %s (markdown: %s)\n", name, filepath.Join(dir, "latest.md"))
	if cfg.Doc == "" && cfg.PlotDir == "" {
		return nil
	}
	return report(res, cfg)
}

func contains(xs []string, s string) bool {
	for _, x := range xs {
		if x == s {
			return true
		}
	}
	return false
}
