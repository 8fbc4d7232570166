package main

import (
	"context"
	"io"

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
with -c overrides the defaults; flags override the file. Ctrl-C stops at the
clients' next batch and keeps every completed round.`,
	}
	c.Run = func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
		x := newExperimentFlags(c, stderr)
		if err := x.parse(args); err != nil {
			return err
		}
		cfg, err := x.config()
		if err != nil {
			return err
		}
		res, err := sim.Run(ctx, cfg, sim.Options{Logger: x.logger(), Progress: stdout})
		writeResult(stdout, res)
		return err
	}
	return c
}
