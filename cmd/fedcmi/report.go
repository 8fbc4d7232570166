package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"path/filepath"

	"github.com/fedcmi/fedcmi/metrics"
	"github.com/fedcmi/fedcmi/report"
)

func cmdReport() *Command {
	c := &Command{
		Name:      "report",
		UsageLine: "report [-out DIR] [-band std|minmax] [-best] [-unfinished] [-ymin Y] [-ymax Y] [-title TEXT] RUN_DIR...",
		Short:     "figures, tables and an HTML page comparing finished runs",
		Long: `Report reads the run directories given, and every run directory below other
directories given (e.g. a sweep's out_dir), groups the runs by setting and
method like fedcmi table, and writes into DIR:

  report.html           one self-contained page (figures embedded, no network)
                        with the summary table, the figures and the list of runs
  summary.md/.csv       the summary table (as fedcmi table prints it)
  accuracy-S.png/.svg   fused and single-modality test accuracy vs round, per
                        method: mean line and a band over seeds (-band)
  bars-S.png/.svg       final fused/A-only/V-only accuracy per method, error bars ± std
  per-class-S.png/.svg  final fused accuracy per class and method, ± std
  dominance-S.png/.svg  dominance (mean dominance ratio) vs round per method,
                        band over seeds

where S names the setting ("all" when the runs share one). DIR defaults to
the folder report inside the one path given, or inside the deepest folder
holding all paths given (report runs/sweep-mfeat writes
runs/sweep-mfeat/report). Report never writes into a folder holding Go
source files. As fedcmi table, it leaves out runs that did not complete
all their rounds unless -unfinished.`,
	}
	c.Run = func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
		fs := newFlagSet(c)
		out := fs.String("out", "", "output `dir`ectory, created if missing (default: <the runs' common folder>/report)")
		alias(fs, stderr, "out", "o")
		band := fs.String("band", "std", "band around mean curves: std (mean ± std) or minmax (smallest to largest run)")
		best := fs.Bool("best", false, "table and bars at each run's best round (by fused accuracy) instead of its last")
		ymin := fs.Float64("ymin", 0, "lower end of the accuracy axes, to zoom in (e.g. 0.8)")
		ymax := fs.Float64("ymax", 1, "upper end of the accuracy axes")
		title := fs.String("title", "", "page title (default \"fedcmi report\")")
		unfinished := fs.Bool("unfinished", false, "also compare runs that did not complete all their rounds")
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
		if !(*ymin < *ymax) || math.IsInf(*ymin, 0) || math.IsInf(*ymax, 0) {
			return &usageError{fmt.Sprintf("-ymin %g and -ymax %g: want finite values with ymin < ymax", *ymin, *ymax)}
		}
		opt := report.Options{Title: *title, Band: b, Pick: metrics.PickFinal, YMin: *ymin, YMax: *ymax}
		if *best {
			opt.Pick = metrics.PickBest
		}
		runs, err := loadRuns(fs.Args(), *unfinished, stderr)
		if err != nil {
			return err
		}
		dir := *out
		if dir == "" {
			if dir, err = defaultReportDir(fs.Args()); err != nil {
				return err
			}
		}
		res, err := report.Build(ctx, runs, dir, opt)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%d runs, %d groups, %d figures: %s\n", len(runs), len(res.Rows), len(res.Figures), res.HTML)
		return nil
	}
	return c
}

// defaultReportDir returns where report writes without -out: the folder
// "report" in the one path given, or in the deepest folder that holds all
// the paths given.
func defaultReportDir(paths []string) (string, error) {
	common := ""
	for i, p := range paths {
		abs, err := filepath.Abs(p)
		if err != nil {
			return "", fmt.Errorf("report: %w", err)
		}
		if i == 0 {
			common = abs
			continue
		}
		for !within(abs, common) {
			common = filepath.Dir(common)
		}
	}
	if len(paths) == 1 {
		// Keep a relative path relative, as the user wrote it.
		return filepath.Join(paths[0], "report"), nil
	}
	if wd, err := filepath.Abs("."); err == nil {
		if rel, err := filepath.Rel(wd, common); err == nil && filepath.IsLocal(rel) {
			common = rel
		}
	}
	return filepath.Join(common, "report"), nil
}

// within reports whether path is dir or inside it (both absolute, clean).
func within(path, dir string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && (rel == "." || filepath.IsLocal(rel))
}
