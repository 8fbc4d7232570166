package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/fedcmi/fedcmi/sweep"
)

func cmdSweep() *Command {
	c := &Command{
		Name:      "sweep",
		UsageLine: "sweep -c sweep.yaml [-parallel N] [-rerun-changed] [-v]",
		Short:     "run a grid of experiments (methods x seeds x settings), resumably",
		Long: `Sweep runs every cell of a grid of experiments, one or a few at a time, and
writes <out_dir>/summary.md and summary.csv: mean ± std over seeds of the
final fused and per-modality accuracies and of the best round, one row per
setting and method. A cell that completed before with the same settings is
not run again, so an interrupted sweep continues where it stopped; a cell that
was interrupted continues after its last completed round (as simulate -resume
does), one that crashed before completing a round starts again from round 1.

Cells are keyed by their resolved experiment (config.yaml in each cell's
directory). If the sweep file or its base changed since a cell completed (say
rounds), the sweep refuses to run, naming each such cell and the fields that
differ; -rerun-changed runs those cells again (each cell's old results are
replaced when its new run starts), another out_dir keeps both. Fields that do
not change results (name, out_dir, overwrite, parallel, backend,
data.cache_dir) do not count. The summary holds only cells run with the
current settings. The sweep file:

  base: configs/mfeat.yaml      # experiment file the cells start from (optional)
  out_dir: runs/sweep-mfeat     # <out_dir>/<setting>/<method>-seed<seed> per cell
  methods: [fedavg, fedprox, fedcmi]
  seeds: [1, 2, 3]
  parallel: 1                   # cells run at once (the -parallel flag overrides it)
  settings:                     # explicit settings (optional), each crossed with the grid
    - {data.partition: iid}
    - {data.alpha: 1}
  grid:                         # any experiment field (dotted path) -> values
    data.multi_ratio: [0.5, 1]
    clients_per_round: [10]

With N cells at once, each trains max(1, parallel/N) clients at once (the
experiment's parallel field), so N = 2 on 2 cores runs two cells of one
client each; results do not depend on N. Ctrl-C stops every running cell at
its clients' next batch, keeps what completed and writes the summary of the
completed cells.

Progress: one line per cell on stdout; on a terminal, a status line on stderr
shows each running cell's round, steps, rate and time left (none in logs and
pipes); -v adds every round of every cell and debug logs (graph compile times)
on stderr. Without -v, only warnings are logged.

Flags:`,
	}
	c.Run = func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
		fs := newFlagSet(c, stderr, nil)
		file := fs.String("c", "", "sweep file (YAML)")
		parallel := fs.Int("parallel", 0, "cells run at once (0: the sweep file's parallel, else 1)")
		rerun := fs.Bool("rerun-changed", false, "run again the completed cells whose settings changed")
		verbose := fs.Bool("v", false, "print every round of every cell and debug logs (graph compile times) on stderr")
		if err := parse(fs, args); err != nil {
			return err
		}
		if *file == "" {
			return &usageError{"a sweep file is required (-c sweep.yaml)"}
		}
		if fs.NArg() > 0 {
			return &usageError{fmt.Sprintf("unexpected argument %q", fs.Arg(0))}
		}
		if *parallel < 0 {
			return &usageError{fmt.Sprintf("-parallel %d: must be >= 0", *parallel)}
		}
		spec, err := sweep.Load(*file)
		if err != nil {
			return err
		}
		if *parallel > 0 {
			spec.Parallel = *parallel
		}
		status := terminalStatus(stderr)
		logw := status.Writer(stderr)
		log := slog.New(slog.NewTextHandler(logw, &slog.HandlerOptions{Level: slog.LevelWarn}))
		opt := sweep.Options{Logger: log, Progress: stdout, Status: status, RerunChanged: *rerun}
		if *verbose {
			opt.Logger, opt.Rounds = newLogger(logw, true), stderr
		}
		if err := sweep.Run(ctx, spec, opt); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "summary: %s/%s\n", spec.OutDir, sweep.SummaryMarkdown)
		return nil
	}
	return c
}
