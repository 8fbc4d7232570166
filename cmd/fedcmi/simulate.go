package main

import (
	"context"
	"io"
	"os"

	"golang.org/x/term"

	"github.com/fedcmi/fedcmi/sim"
)

func cmdSimulate() *Command {
	c := &Command{
		Name:      "simulate",
		UsageLine: "simulate [-c exp.yaml] [-resume] [-v] [-<field> value ...]",
		Short:     "run a federated experiment on this machine",
		Long: `Simulate runs a federated experiment with simulated clients on this machine
and writes a run directory (<out_dir>/<name>): config.yaml (resolved),
metrics.csv and metrics.jsonl (one row per round), model.safetensors (the
latest global model), standardizer.json and summary.json, and, until the run
completes, checkpoint.safetensors and clients/ (what -resume needs).

Without flags it runs FedCMI on the built-in synthetic audio-visual data
(a strong "audio" and a weak "visual" modality). The experiment file given
with -c overrides the defaults; flags override the file. Ctrl-C stops at the
clients' next batch and keeps every completed round; -resume then continues
after the last completed round, to the result an uninterrupted run gives
(refused, naming the fields, if the experiment differs from the run's
config.yaml; a completed run is reported as it is, a run without a completed
round starts from round 1).

On a terminal, a status line on stderr shows the round in progress: local
training steps done, steps per second and the time left in the round and the
run; logs and pipes get no status line.`,
	}
	c.Run = func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
		x := newExperimentFlags(c, stderr)
		resume := x.fs.Bool("resume", false, "continue after the last completed round")
		if err := x.parse(args); err != nil {
			return err
		}
		cfg, err := x.config()
		if err != nil {
			return err
		}
		status := terminalStatus(stderr)
		out := status.Writer(stdout)
		res, err := sim.Run(ctx, cfg, sim.Options{
			Logger: newLogger(status.Writer(stderr), *x.verbose), Progress: out, Resume: *resume, Status: status, TuneGC: true,
		})
		writeResult(out, res, &cfg)
		return err
	}
	return c
}

// terminalStatus returns a live status line on stderr if it is a terminal,
// else nil: logs, pipes and CI get no redrawn lines.
func terminalStatus(stderr io.Writer) *sim.StatusLine {
	f, ok := stderr.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return nil
	}
	width, _, err := term.GetSize(int(f.Fd()))
	if err != nil {
		width = 80
	}
	return sim.NewStatusLine(f, width)
}
