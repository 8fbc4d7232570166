package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/fedcmi/fedcmi/config"
	"github.com/fedcmi/fedcmi/metrics"
	"github.com/fedcmi/fedcmi/rundir"
)

func cmdTable() *Command {
	c := &Command{
		Name:      "table",
		UsageLine: "table [-best] RUN_DIR...",
		Short:     "compare finished runs: mean +- std over seeds, one row per method",
		Long: `Table reads the run directories given (config.yaml and metrics.jsonl), groups
them by method, and prints a Markdown table of the final round's accuracies
(or each run's best, with -best) as mean +- sample std over the runs of a
group, with the mean dominance ratio of the last round. Runs of a group must
have the same modalities.`,
	}
	c.Run = func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
		fs := newFlagSet(c, stderr, nil)
		best := fs.Bool("best", false, "use each run's best round (by fused accuracy) instead of its last")
		if err := parse(fs, args); err != nil {
			return err
		}
		if fs.NArg() == 0 {
			return &usageError{"no run directories given"}
		}
		type group struct {
			heads []string
			vals  [][]float64 // per head, then dominance, then rounds
			runs  int
		}
		groups := map[string]*group{}
		var order []string
		for _, dir := range fs.Args() {
			var cfg config.Config
			if err := cfg.LoadFile(filepath.Join(dir, rundir.ConfigFile)); err != nil {
				return err
			}
			f, err := os.Open(filepath.Join(dir, rundir.MetricsJSONL))
			if err != nil {
				return fmt.Errorf("%s: %w", dir, err)
			}
			schema, rounds, err := metrics.ReadJSONL(f)
			f.Close()
			if err != nil {
				return fmt.Errorf("%s: %w", dir, err)
			}
			if len(rounds) == 0 {
				return fmt.Errorf("%s: no completed round", dir)
			}
			r := rounds[len(rounds)-1]
			if *best {
				for _, x := range rounds {
					if x.Heads[0] > r.Heads[0] {
						r = x
					}
				}
			}
			g, ok := groups[cfg.Method]
			if !ok {
				g = &group{heads: schema.Heads, vals: make([][]float64, len(schema.Heads)+2)}
				groups[cfg.Method] = g
				order = append(order, cfg.Method)
			} else if strings.Join(g.heads, ",") != strings.Join(schema.Heads, ",") {
				return fmt.Errorf("%s: heads %v differ from the other %s runs' %v", dir, schema.Heads, cfg.Method, g.heads)
			}
			for h := range schema.Heads {
				g.vals[h] = append(g.vals[h], r.Heads[h])
			}
			g.vals[len(schema.Heads)] = append(g.vals[len(schema.Heads)], r.Dominance)
			g.vals[len(schema.Heads)+1] = append(g.vals[len(schema.Heads)+1], float64(r.Round))
			g.runs++
		}
		sort.SliceStable(order, func(i, j int) bool { return methodRank(order[i]) < methodRank(order[j]) })
		first := groups[order[0]]
		fmt.Fprintf(stdout, "| method | runs | %s | rho | round |\n", strings.Join(first.heads, " | "))
		fmt.Fprintf(stdout, "|---|---|%s---|---|\n", strings.Repeat("---|", len(first.heads)))
		for _, name := range order {
			g := groups[name]
			cells := make([]string, 0, len(g.vals))
			for k, v := range g.vals {
				m, s, _ := metrics.MeanStd(v)
				switch {
				case k == len(g.vals)-1:
					cells = append(cells, fmt.Sprintf("%.0f", m))
				case k == len(g.vals)-2:
					cells = append(cells, fmt.Sprintf("%.2f", m))
				default:
					cells = append(cells, fmt.Sprintf("%.3f ± %.3f", m, s))
				}
			}
			fmt.Fprintf(stdout, "| %s | %d | %s |\n", name, g.runs, strings.Join(cells, " | "))
		}
		return nil
	}
	return c
}

// methodRank orders baselines before FedCMI and its ablations.
func methodRank(m string) string {
	switch m {
	case "fedavg":
		return "0"
	case "fedprox":
		return "1"
	case "fedcmi":
		return "2"
	}
	return "3" + m
}
