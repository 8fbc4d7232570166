package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"

	"github.com/fedcmi/fedcmi/config"
	"github.com/fedcmi/fedcmi/sweep"
)

func cmdSweep() *Command {
	c := &Command{
		Name:      "sweep",
		UsageLine: "sweep -c sweep.yaml [-parallel N] [-rerun_changed] [-v] [-<field> value ...]",
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
differ; -rerun_changed runs those cells again (each cell's old results are
replaced when its new run starts), another out_dir keeps both. Fields that do
not change results (name, out_dir, overwrite, parallel, backend,
data.cache_dir, tensorboard) do not count, nor fields a newer fedcmi added
at their defaults. A completed cell whose data changed since it ran (the
digest in its summary.json) is refused the same way. The summary holds only
cells run with the current settings on the current data. The sweep file:

  base: mfeat.yaml              # experiment file the cells start from (optional)
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

base is relative to the sweep file's folder (as an experiment file's paths
are relative to it), out_dir to the working directory. summary.md is the
table fedcmi table prints for out_dir when out_dir holds the sweep's
completed cells alone: settings are named by the fields in which the cells
differ (no setting column when they share one).

With N cells at once, each trains max(1, parallel/N) clients at once (the
experiment's parallel field), so N = 2 on 2 cores runs two cells of one
client each; results do not depend on N. Ctrl-C stops every running cell at
its clients' next batch, keeps what completed and writes the summary of the
completed cells.

Progress: one line per cell on stdout; on a terminal, a status line on stderr
shows each running cell's round, steps, rate and time left (none in logs and
pipes); -v adds every round of every cell and debug logs (graph compile times)
on stderr. Without -v, only warnings are logged.

Experiment field flags change every cell's experiment, as if written in the
base file (sweep -c sweep.yaml -rounds 5); -out_dir replaces the sweep
file's out_dir. A field the sweep varies (its grid or settings), and
method, seed, name and overwrite, which the sweep sets for each cell,
cannot be overridden; -parallel is the number of cells at once, not the
experiment field.`,
	}
	c.Run = func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
		fs := newFlagSet(c)
		file := fs.String("c", "", "sweep `file` (YAML)")
		// The usage states the default, 0, which the help leaves out
		// (usageText omits zero defaults), and what it means.
		parallel := fs.Int("parallel", 0, "cells run at once, not the experiment field (default 0: the sweep file's parallel, else 1)")
		rerun := fs.Bool("rerun_changed", false, "run again the completed cells whose settings changed")
		verbose := fs.Bool("v", false, "print every round of every cell and debug logs (graph compile times) on stderr")
		// Every experiment field but parallel, whose name the sweep's own
		// flag takes.
		fieldFlags := flag.NewFlagSet("fields", flag.ContinueOnError)
		overrides := config.RegisterFlags(fieldFlags)
		fieldFlags.VisitAll(func(f *flag.Flag) {
			if fs.Lookup(f.Name) == nil {
				fs.Var(f.Value, f.Name, f.Usage)
			}
		})
		// The help leaves out the fields the sweep sets per cell: their flags
		// are only defined to be refused with a message saying where to set
		// them (checkSweepOverrides).
		shown := flag.NewFlagSet(c.Name, flag.ContinueOnError)
		fs.VisitAll(func(f *flag.Flag) {
			if _, ok := setPerCell[f.Name]; !ok {
				shown.Var(f.Value, f.Name, f.Usage)
			}
		})
		fs.Usage = func() { writeHelp(fs.Output(), c, shown) }
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
		var given []string
		fs.Visit(func(f *flag.Flag) {
			if _, ok := fieldOf(f); ok { // not the sweep's own -parallel
				given = append(given, f.Name)
			}
		})
		if err := checkSweepOverrides(spec, given); err != nil {
			return err
		}
		if len(given) > 0 {
			spec.Override = overrides.Apply
			// -out_dir moves the whole sweep: cells go below it.
			var probe config.Config
			if err := overrides.Apply(&probe); err != nil {
				return err
			}
			if probe.OutDir != "" {
				spec.OutDir = probe.OutDir
			}
		}
		if *parallel > 0 {
			spec.Parallel = *parallel
		}
		status := terminalStatus(stderr)
		logw := status.Writer(stderr)
		log := slog.New(slog.NewTextHandler(logw, &slog.HandlerOptions{Level: slog.LevelWarn}))
		opt := sweep.Options{Logger: log, Progress: stdout, Status: status, RerunChanged: *rerun, TuneGC: true}
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

// setPerCell maps the experiment fields the sweep sets per cell, whose
// flags it refuses, to why.
var setPerCell = map[string]string{
	"method":    "the sweep file's methods list sets it per cell; edit the sweep file",
	"seed":      "the sweep file's seeds list sets it per cell; edit the sweep file",
	"name":      "the sweep sets it per cell",
	"overwrite": "the sweep sets it per cell",
}

// checkSweepOverrides refuses field flags the sweep would ignore: the
// fields it sets per cell and those its grid or settings vary.
func checkSweepOverrides(spec *sweep.Spec, given []string) error {
	for _, path := range given {
		if why, ok := setPerCell[path]; ok {
			return &usageError{fmt.Sprintf("-%s: %s", path, why)}
		}
		if _, ok := spec.Grid[path]; ok {
			return &usageError{fmt.Sprintf("-%s: the sweep's grid varies it; edit the grid in the sweep file", path)}
		}
		for i, set := range spec.Settings {
			if _, ok := set[path]; ok {
				return &usageError{fmt.Sprintf("-%s: settings entry %d of the sweep file sets it; edit the sweep file", path, i+1)}
			}
		}
	}
	return nil
}
