package main

import (
	"context"
	"fmt"
	"io"

	"github.com/fedcmi/fedcmi/metrics"
	"github.com/fedcmi/fedcmi/report"
)

func cmdTable() *Command {
	c := &Command{
		Name:      "table",
		UsageLine: "table [-best] [-csv] [-unfinished] RUN_DIR...",
		Short:     "compare finished runs: mean +- std over seeds, one row per method and setting",
		Long: `Table reads the run directories given, and every run directory below other
directories given (e.g. a sweep's out_dir), groups the runs by method and
setting (the configuration fields in which runs differ, besides method and
seed and those that do not change results, such as backend and parallel,
unless leaving those out would put one seed twice in a group; read from each
run's config.yaml), and prints a Markdown table: the
final round's accuracies (or each run's best round by fused accuracy, with
-best) as mean +- sample std over the runs of a group, the mean dominance
ratio (dominance) and the round number of that round, and the best round. Runs of a
group must have the same modalities. It is the table fedcmi sweep writes to
summary.md when the folder holds only the sweep's cells run with its
current settings.

Runs that did not complete all their rounds (stopped, or still running)
are left out, with a note on stderr naming them: their final round is an
earlier one. -unfinished takes them in.`,
	}
	c.Run = func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
		fs := newFlagSet(c)
		best := fs.Bool("best", false, "use each run's best round (by fused accuracy) instead of its last")
		asCSV := fs.Bool("csv", false, "print CSV instead of Markdown")
		unfinished := fs.Bool("unfinished", false, "also compare runs that did not complete all their rounds")
		if err := parse(fs, args); err != nil {
			return err
		}
		if fs.NArg() == 0 {
			return &usageError{"no run directories given"}
		}
		runs, err := loadRuns(fs.Args(), *unfinished, stderr)
		if err != nil {
			return err
		}
		pick := metrics.PickFinal
		if *best {
			pick = metrics.PickBest
		}
		rows, err := metrics.Compare(report.Labeled(runs), pick)
		if err != nil {
			return err
		}
		if *asCSV {
			return metrics.WriteComparisonCSV(stdout, rows)
		}
		return metrics.WriteComparison(stdout, rows)
	}
	return c
}

// loadRuns loads the runs in paths (report.Load), leaving out the
// unfinished ones, with a note on stderr, unless unfinished.
func loadRuns(paths []string, unfinished bool, stderr io.Writer) ([]*report.Run, error) {
	runs, err := report.Load(paths...)
	if err != nil || unfinished {
		return runs, err
	}
	done, left, err := report.Finished(runs)
	if err != nil {
		return nil, fmt.Errorf("%w; -unfinished takes them in", err)
	}
	if len(left) > 0 {
		fmt.Fprintf(stderr, "fedcmi: left out %d unfinished run(s), stopped or still running (-unfinished takes them in): %s\n", len(left), report.Dirs(left))
	}
	return done, nil
}
