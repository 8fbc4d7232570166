package main

import (
	"context"
	"fmt"
	"io"

	"github.com/fedcmi/fedcmi/config"
	"github.com/fedcmi/fedcmi/metrics"
	"github.com/fedcmi/fedcmi/sim"
)

func cmdSimulate() *Command {
	c := &Command{
		Name:      "simulate",
		UsageLine: "simulate [-c exp.yaml] [-v] [-<field> value ...]",
		Short:     "run a federated experiment on this machine",
		Long: `Simulate runs a federated experiment with simulated clients on this machine
and writes a run directory (<out_dir>/<name>): config.yaml (resolved),
metrics.csv and metrics.jsonl (one row per round), model.safetensors (the
latest global model), standardizer.json and summary.json.

Without flags it runs FedCMI on the built-in synthetic audio-visual data
(a strong "audio" and a weak "visual" modality). The experiment file given
with -c overrides the defaults; flags override the file. Ctrl-C stops after
the current client and keeps every completed round.

Flags:
  -c file   experiment file (YAML), fields as below
  -v        log debug detail (graph compile times, ...)

Every configuration field is also a flag (lists comma-separated):
`,
	}
	c.Run = func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
		fs := newFlagSet(c, stderr, func(w io.Writer) { config.WriteReference(w, false) })
		file := fs.String("c", "", "experiment file (YAML)")
		verbose := fs.Bool("v", false, "log debug detail")
		overrides := config.RegisterFlags(fs)
		if err := parse(fs, args); err != nil {
			return err
		}
		if fs.NArg() > 0 {
			return &usageError{fmt.Sprintf("unexpected argument %q", fs.Arg(0))}
		}
		cfg, err := loadConfig(*file, overrides)
		if err != nil {
			return err
		}
		res, err := sim.Run(ctx, cfg, sim.Options{Logger: newLogger(stderr, *verbose), Progress: stdout})
		if res != nil {
			fmt.Fprintln(stdout)
			if len(res.Rounds) > 0 {
				last := res.Rounds[len(res.Rounds)-1]
				fmt.Fprintf(stdout, "final accuracy after round %d (test set):\n", last.Round)
				metrics.WriteTable(stdout, res.Schema, []metrics.Round{last})
				fmt.Fprintf(stdout, "best %s %.4f at round %d; %.1fs in all\n", res.Schema.Heads[0],
					res.Summary.Best[res.Schema.Heads[0]], res.Summary.BestRound, res.Summary.Seconds)
			}
			fmt.Fprintf(stdout, "run directory: %s\n", res.Dir)
		}
		return err
	}
	return c
}

// loadConfig resolves an experiment: defaults, then the file (if any), then
// the flags given, then validation.
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
	return cfg, cfg.Validate()
}

func cmdConfig() *Command {
	c := &Command{
		Name:      "config",
		UsageLine: "config [-markdown | -yaml]",
		Short:     "print the configuration reference or the default experiment file",
		Long: `Config prints every experiment field with its default and meaning, as a
plain table, as Markdown (-markdown), or the default experiment as a YAML file
to start from (-yaml).`,
	}
	c.Run = func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
		fs := newFlagSet(c, stderr, nil)
		md := fs.Bool("markdown", false, "print a Markdown table")
		asYAML := fs.Bool("yaml", false, "print the default experiment file")
		if err := parse(fs, args); err != nil {
			return err
		}
		if *asYAML {
			d := config.Default()
			b, err := d.YAML()
			if err != nil {
				return err
			}
			_, err = stdout.Write(b)
			return err
		}
		return config.WriteReference(stdout, *md)
	}
	return c
}
