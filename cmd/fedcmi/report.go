package main

import (
	"context"
	"fmt"
	"io"

	"github.com/fedcmi/fedcmi/metrics"
	"github.com/fedcmi/fedcmi/report"
)

func cmdReport() *Command {
	c := &Command{
		Name:      "report",
		UsageLine: "report [-o DIR] [-band std|minmax] [-best] [-title TEXT] RUN_DIR...",
		Short:     "figures, tables and an HTML page comparing finished runs",
		Long: `Report reads the run directories given, and every run directory below other
directories given (e.g. a sweep's out_dir), groups the runs by setting and
method like fedcmi table, and writes into DIR:

  report.html        one self-contained page (figures embedded, no network)
                     with the summary table, the figures and the list of runs
  summary.md/.csv    the summary table (as fedcmi table prints it)
  accuracy-S.png/.svg   fused and single-modality test accuracy vs round, per
                     method: mean line and a band over seeds (-band)
  bars-S.png/.svg    final fused/A-only/V-only accuracy per method, error bars ± std
  per-class-S.png/.svg  final fused accuracy per class and method, ± std
  dominance-S.png/.svg  mean dominance ratio rho vs round per method, band over seeds

where S names the setting ("all" when the runs share one).

Flags:`,
	}
	c.Run = func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
		fs := newFlagSet(c, stderr, nil)
		out := fs.String("o", "report", "output directory (created if missing)")
		band := fs.String("band", "std", "band around mean curves: std (mean ± std) or minmax (smallest to largest run)")
		best := fs.Bool("best", false, "table and bars at each run's best round (by fused accuracy) instead of its last")
		title := fs.String("title", "", "page title (default \"fedcmi report\")")
		if err := parse(fs, args); err != nil {
			return err
		}
		if fs.NArg() == 0 {
			return &usageError{"no run directories given"}
		}
		b, err := report.ParseBand(*band)
		if err != nil {
			return &usageError{err.Error()}
		}
		opt := report.Options{Title: *title, Band: b, Pick: metrics.PickFinal}
		if *best {
			opt.Pick = metrics.PickBest
		}
		runs, err := report.Load(fs.Args()...)
		if err != nil {
			return err
		}
		res, err := report.Build(ctx, runs, *out, opt)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%d runs, %d groups, %d figures: %s\n", len(runs), len(res.Rows), len(res.Figures), res.HTML)
		return nil
	}
	return c
}
