package main

import (
	"flag"
	"fmt"
	"io"
	"log/slog"

	"github.com/fedcmi/fedcmi/config"
	"github.com/fedcmi/fedcmi/fl"
	"github.com/fedcmi/fedcmi/metrics"
	"github.com/fedcmi/fedcmi/sim"
)

// experimentFlags are the flags of the commands that run an experiment
// (simulate, serve, join): -c, the experiment file, -v, and one flag per
// configuration field. The command adds its own flags to fs before parse.
type experimentFlags struct {
	fs        *flag.FlagSet
	file      *string
	verbose   *bool
	overrides *config.Overrides
	stderr    io.Writer
}

// newExperimentFlags returns c's flag set with the experiment flags; its
// help ends with the experiment fields.
func newExperimentFlags(c *Command, stderr io.Writer) *experimentFlags {
	fs := newFlagSet(c)
	return &experimentFlags{
		fs:        fs,
		file:      fs.String("c", "", "experiment `file` (YAML); the field flags override it"),
		verbose:   fs.Bool("v", false, "log debug detail (graph compile times, each client's training)"),
		overrides: config.RegisterFlags(fs),
		stderr:    stderr,
	}
}

// parse parses args; a positional argument is a usage error.
func (x *experimentFlags) parse(args []string) error {
	if err := parse(x.fs, args); err != nil {
		return err
	}
	if x.fs.NArg() > 0 {
		return &usageError{fmt.Sprintf("unexpected argument %q", x.fs.Arg(0))}
	}
	return nil
}

// config resolves the experiment the parsed flags give (loadConfig).
func (x *experimentFlags) config() (config.Config, error) {
	return loadConfig(*x.file, x.overrides)
}

// logger returns the command's logger, at debug level with -v.
func (x *experimentFlags) logger() *slog.Logger {
	return newLogger(x.stderr, *x.verbose)
}

// loadConfig resolves an experiment: defaults, then the file (if any, its
// paths relative to it), then the flags given (their paths relative to the
// working directory), then validation. Paths come out absolute, so that
// the run directory's config.yaml names the same folders from anywhere.
func loadConfig(file string, overrides *config.Overrides) (config.Config, error) {
	cfg := config.Default()
	if file != "" {
		if err := cfg.LoadFile(file); err != nil {
			return cfg, err
		}
	}
	if err := overrides.Apply(&cfg); err != nil {
		return cfg, err
	}
	if err := cfg.AbsPaths(); err != nil {
		return cfg, err
	}
	return cfg, fl.CheckConfig(&cfg)
}

// writeResult prints the end of a run of experiment cfg: the last round's
// accuracy (on the test set, or the validation split: sim.EvaluatedOn),
// the best one, the clients' own models' (if they keep parts of their
// own) and the run directory (res may be nil).
func writeResult(w io.Writer, res *sim.Result, cfg *config.Config) {
	if res == nil {
		return
	}
	fmt.Fprintln(w)
	if len(res.Rounds) > 0 {
		last := res.Rounds[len(res.Rounds)-1]
		fmt.Fprintf(w, "final accuracy after round %d (%s set):\n", last.Round, sim.EvaluatedOn(cfg))
		metrics.WriteTable(w, res.Schema, []metrics.Round{last})
		fmt.Fprintf(w, "best %s %.4f at round %d; %.1fs in all\n", res.Schema.Heads[0],
			res.Summary.Best[res.Schema.Heads[0]], res.Summary.BestRound, res.Summary.Seconds)
	}
	if own := res.Own; own != nil {
		fmt.Fprintf(w, "the clients' own models (their own parts in the final model; %d of the %d that keep some), mean ± std:\n ", own.Clients, own.Of)
		for _, h := range res.Schema.Heads {
			if m, ok := own.Mean[h]; ok {
				fmt.Fprintf(w, " %s %.4f ± %.4f", h, m, own.Std[h])
				if n := own.N[h]; n < own.Clients {
					fmt.Fprintf(w, " (%d clients)", n) // the others lack the modality
				}
			}
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "run directory: %s\n", res.Dir)
}
