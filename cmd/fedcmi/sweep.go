package main

import (
	"context"
	"fmt"
	"io"

	"github.com/fedcmi/fedcmi/sweep"
)

func cmdSweep() *Command {
	c := &Command{
		Name:      "sweep",
		UsageLine: "sweep -c sweep.yaml [-v]",
		Short:     "run a grid of experiments (methods x seeds x settings), resumably",
		Long: `Sweep runs every cell of a grid of experiments one after another and writes
<out_dir>/summary.md and summary.csv: mean ± std over seeds of the final fused
and per-modality accuracies and of the best round, one row per setting and
method. A cell that completed before is not run again, so an interrupted sweep
continues where it stopped. The sweep file:

  base: configs/mfeat.yaml      # experiment file the cells start from (optional)
  out_dir: runs/sweep-mfeat     # <out_dir>/<setting>/<method>-seed<seed> per cell
  methods: [fedavg, fedprox, fedcmi]
  seeds: [1, 2, 3]
  grid:                         # any experiment field (dotted path) -> values
    data.alpha: [1e8, 1]
    data.multi_ratio: [0.5]

Flags:`,
	}
	c.Run = func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
		fs := newFlagSet(c, stderr, nil)
		file := fs.String("c", "", "sweep file (YAML)")
		verbose := fs.Bool("v", false, "log each run's progress")
		if err := parse(fs, args); err != nil {
			return err
		}
		if *file == "" {
			return &usageError{"a sweep file is required (-c sweep.yaml)"}
		}
		spec, err := sweep.Load(*file)
		if err != nil {
			return err
		}
		log := newLogger(io.Discard, false)
		if *verbose {
			log = newLogger(stderr, true)
		}
		if err := sweep.Run(ctx, spec, log, stdout); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "summary: %s/summary.md\n", spec.OutDir)
		return nil
	}
	return c
}
