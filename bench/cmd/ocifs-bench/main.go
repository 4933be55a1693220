// Command ocifs-bench generates the benchmark images and runs the
// end-to-end benchmarks of ocifs against the tools people use today.
//
//	ocifs-bench gen [-seed N] [-out DIR] SCALE...   generate (or reuse) layouts, print their paths
//	ocifs-bench run [flags]                         run the scenarios, write JSON, markdown and plots
//	ocifs-bench report -json FILE [flags]           rewrite the markdown and plots from a JSON result
//
// hack/bench.sh (make bench) is the usual way to call it.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/ocifs/ocifs/bench/gen"
	"github.com/ocifs/ocifs/bench/harness"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch os.Args[1] {
	case "gen":
		err = genMain(ctx, os.Args[2:])
	case "run":
		err = harness.Main(ctx, os.Args[2:])
	case "report":
		err = harness.ReportMain(os.Args[2:])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "ocifs-bench: %v\n", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: ocifs-bench gen|run|report [flags]  (see -h of each)")
	os.Exit(2)
}

func genMain(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("gen", flag.ExitOnError)
	seed := fs.Uint64("seed", 1, "random seed")
	out := fs.String("out", "bench/out/layouts", "cache directory of generated layouts")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: ocifs-bench gen [-seed N] [-out DIR] SCALE...  (SCALE: 10k, 100k, 300k, or a number of files)")
		fs.PrintDefaults()
	}
	_ = fs.Parse(args)
	if fs.NArg() == 0 {
		fs.Usage()
		os.Exit(2)
	}
	for _, s := range fs.Args() {
		opts, err := gen.ScaleOptions(s, *seed)
		if err != nil {
			return err
		}
		m, err := gen.Cached(ctx, *out, opts)
		if err != nil {
			return err
		}
		t := m.Totals
		fmt.Printf("%s\t%d files, %d dirs, %d symlinks, %d hardlinks, %d whiteouts, %d opaque, %.2f GiB in %d layers, generated in %.1fs\n",
			m.Layout, t.Files, t.Dirs, t.Symlinks, t.Hardlinks, t.Whiteouts, t.Opaques, float64(t.Bytes)/(1<<30), len(m.Layers), m.Seconds)
	}
	return nil
}
