package metrics

import (
	"encoding/csv"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
)

// Pick chooses the round of each run that a comparison reports.
type Pick int

const (
	// PickFinal reports each run's last round.
	PickFinal Pick = iota
	// PickBest reports each run's round with the best fused (Heads[0])
	// accuracy, the earliest on ties (Summary.BestRound).
	PickBest
)

// Labeled is one run's history with the labels a comparison groups it by.
type Labeled struct {
	// Name identifies the run in errors (e.g. its directory).
	Name string
	// Setting names what the run's group varies besides method and seed
	// (e.g. "data.alpha=1"); "" when there is one setting.
	Setting string
	// Method is the federated method.
	Method string
	// Schema and Rounds are the run's history (ReadJSONL).
	Schema Schema
	Rounds []Round
}

// Stat is a mean and a sample standard deviation (MeanStd) over N runs;
// NaN values are left out of all three.
type Stat struct {
	Mean, Std float64
	N         int
}

// StatOf returns the Stat of xs (see MeanStd).
func StatOf(xs []float64) Stat {
	m, s, n := MeanStd(xs)
	return Stat{Mean: m, Std: s, N: n}
}

// Row is one line of a comparison: the runs of one setting and method.
type Row struct {
	Setting, Method string
	// Runs is the number of runs (seeds) in the group.
	Runs int
	// Heads and Classes are the group's schema.
	Heads, Classes []string
	// Acc holds, per head, the accuracy at the picked round.
	Acc []Stat
	// PerClass holds, per class, the fused accuracy at the picked round.
	PerClass []Stat
	// Dominance is the dominance (mean dominance ratio ρ) of the picked round.
	Dominance Stat
	// FirstDominant is, per run, the mean over its rounds of the share of
	// multimodal training batches that took modality 0 as the dominant
	// one (Round.FirstDominant; the infiltration direction when there is
	// one): where modality 0 truly dominates, the direction's agreement.
	FirstDominant Stat
	// Round is the picked round's number.
	Round Stat
	// BestRound is the round with the best fused accuracy.
	BestRound Stat
}

// Compare groups runs by setting and method, in the order the groups first
// appear, and condenses each group: mean and sample std over its runs of
// the accuracies (per head and per class), dominance ratio and round number
// of the round pick chooses, and of the best round. It is the one table
// behind `fedcmi sweep`'s summary, `fedcmi table` and reports.
//
// It returns an error naming the run if a run has no rounds or if its heads
// or classes differ from those of the earlier runs in its group.
func Compare(runs []Labeled, pick Pick) ([]Row, error) {
	type acc struct {
		heads, classes          [][]float64
		dom, first, round, best []float64
	}
	var rows []Row
	var accs []*acc
	index := map[[2]string]int{}
	for _, r := range runs {
		if len(r.Rounds) == 0 {
			return nil, fmt.Errorf("metrics: compare %s: no rounds", r.Name)
		}
		key := [2]string{r.Setting, r.Method}
		k, ok := index[key]
		if !ok {
			k = len(rows)
			index[key] = k
			rows = append(rows, Row{Setting: r.Setting, Method: r.Method,
				Heads: slices.Clone(r.Schema.Heads), Classes: slices.Clone(r.Schema.Classes)})
			accs = append(accs, &acc{heads: make([][]float64, len(r.Schema.Heads)), classes: make([][]float64, len(r.Schema.Classes))})
		} else if !slices.Equal(rows[k].Heads, r.Schema.Heads) || !slices.Equal(rows[k].Classes, r.Schema.Classes) {
			return nil, fmt.Errorf("metrics: compare %s: heads %v and classes %v differ from the other %s runs' %v and %v",
				r.Name, r.Schema.Heads, r.Schema.Classes, groupName(r.Setting, r.Method), rows[k].Heads, rows[k].Classes)
		}
		sum := Summarize(r.Schema, r.Rounds)
		picked := r.Rounds[len(r.Rounds)-1]
		if pick == PickBest {
			for _, x := range r.Rounds {
				if x.Round == sum.BestRound {
					picked = x
					break
				}
			}
		}
		a := accs[k]
		for h := range a.heads {
			a.heads[h] = append(a.heads[h], at(picked.Heads, h))
		}
		for c := range a.classes {
			a.classes[c] = append(a.classes[c], at(picked.PerClass, c))
		}
		a.dom = append(a.dom, picked.Dominance)
		var fd []float64
		for _, x := range r.Rounds {
			fd = append(fd, x.FirstDominant)
		}
		a.first = append(a.first, StatOf(fd).Mean)
		a.round = append(a.round, float64(picked.Round))
		best := math.NaN()
		if sum.BestRound > 0 {
			best = float64(sum.BestRound)
		}
		a.best = append(a.best, best)
		rows[k].Runs++
	}
	for k := range rows {
		a := accs[k]
		for _, v := range a.heads {
			rows[k].Acc = append(rows[k].Acc, StatOf(v))
		}
		for _, v := range a.classes {
			rows[k].PerClass = append(rows[k].PerClass, StatOf(v))
		}
		rows[k].Dominance = StatOf(a.dom)
		rows[k].FirstDominant = StatOf(a.first)
		rows[k].Round = StatOf(a.round)
		rows[k].BestRound = StatOf(a.best)
	}
	return rows, nil
}

func at(xs []float64, i int) float64 {
	if i < len(xs) {
		return xs[i]
	}
	return math.NaN()
}

func groupName(setting, method string) string {
	if setting == "" {
		return method
	}
	return setting + " " + method
}

// WriteComparison writes rows as a Markdown table: setting (only if some
// row has one), method, runs, one "mean ± std" column per head, the
// dominance (mean dominance ratio) of the picked round, the mean share of batches
// taking modality 0 as dominant over all rounds (named after modality 0),
// the round number of the picked round, and the best round as mean ± std. Values that were not measured show as "-". A row
// whose heads differ from the row before starts a new table.
func WriteComparison(w io.Writer, rows []Row) error {
	if len(rows) == 0 {
		_, err := fmt.Fprintln(w, "(no completed runs)")
		return err
	}
	withSetting := slices.ContainsFunc(rows, func(r Row) bool { return r.Setting != "" })
	var b strings.Builder
	for i, r := range rows {
		if i == 0 || !slices.Equal(r.Heads, rows[i-1].Heads) {
			if i > 0 {
				b.WriteByte('\n')
			}
			if withSetting {
				b.WriteString("| setting ")
			}
			fmt.Fprintf(&b, "| method | runs | %s | dominance | %s dominant | round | best round |\n", strings.Join(r.Heads, " | "), FirstModality(r.Heads))
			if withSetting {
				b.WriteString("|---")
			}
			fmt.Fprintf(&b, "|---|---|%s---|---|---|---|\n", strings.Repeat("---|", len(r.Heads)))
		}
		if withSetting {
			fmt.Fprintf(&b, "| %s ", r.Setting)
		}
		fmt.Fprintf(&b, "| %s | %d |", r.Method, r.Runs)
		for _, s := range r.Acc {
			fmt.Fprintf(&b, " %s |", FormatStat(s, 3))
		}
		fmt.Fprintf(&b, " %s | %s | %s | %s |\n", formatMean(r.Dominance, 2), formatMean(r.FirstDominant, 2), formatMean(r.Round, 0), FormatStat(r.BestRound, 1))
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("metrics: write comparison: %w", err)
	}
	return nil
}

// FormatStat formats s as "mean ± std" with prec decimals, "-" when no
// value was measured.
func FormatStat(s Stat, prec int) string {
	if s.N == 0 {
		return "-"
	}
	return strconv.FormatFloat(s.Mean, 'f', prec, 64) + " ± " + strconv.FormatFloat(s.Std, 'f', prec, 64)
}

func formatMean(s Stat, prec int) string {
	if s.N == 0 || math.IsInf(s.Mean, 0) {
		return "-"
	}
	return strconv.FormatFloat(s.Mean, 'f', prec, 64)
}

// AllHeads returns the heads of all rows, in the order they first appear:
// settings may differ in their heads.
func AllHeads(rows []Row) []string {
	var heads []string
	for _, r := range rows {
		for _, h := range r.Heads {
			if !slices.Contains(heads, h) {
				heads = append(heads, h)
			}
		}
	}
	return heads
}

// WriteComparisonCSV writes rows as CSV with the header setting, method,
// runs, <head>_mean, <head>_std (per head of any row, in the order they
// first appear), dominance_mean, first_dominant_mean, round_mean,
// best_round_mean, best_round_std;
// numbers in full precision, unmeasured values and heads a row lacks
// empty.
func WriteComparisonCSV(w io.Writer, rows []Row) error {
	heads := AllHeads(rows)
	cw := csv.NewWriter(w)
	header := []string{"setting", "method", "runs"}
	for _, h := range heads {
		header = append(header, h+"_mean", h+"_std")
	}
	cw.Write(append(header, "dominance_mean", "first_dominant_mean", "round_mean", "best_round_mean", "best_round_std"))
	for _, r := range rows {
		rec := []string{r.Setting, r.Method, strconv.Itoa(r.Runs)}
		for _, h := range heads {
			if i := slices.Index(r.Heads, h); i >= 0 {
				rec = append(rec, formatCSVFloat(r.Acc[i].Mean), formatCSVFloat(r.Acc[i].Std))
			} else {
				rec = append(rec, "", "")
			}
		}
		rec = append(rec, formatCSVFloat(r.Dominance.Mean), formatCSVFloat(r.FirstDominant.Mean), formatCSVFloat(r.Round.Mean),
			formatCSVFloat(r.BestRound.Mean), formatCSVFloat(r.BestRound.Std))
		cw.Write(rec)
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("metrics: write comparison CSV: %w", err)
	}
	return nil
}

// FirstModality names modality 0 from a schema's heads (its "<name>_only"
// head, the second), or "first".
func FirstModality(heads []string) string {
	if len(heads) > 1 {
		if name, ok := strings.CutSuffix(heads[1], "_only"); ok {
			return name
		}
	}
	return "first"
}
