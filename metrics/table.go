package metrics

import (
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// WriteTable writes an aligned plain-text table of rounds to w, one line per
// round under a header line: round, one column per head of s (accuracy as
// 0.xxxx), dominance (0.xxx), train loss (0.xxxx) and the round's seconds
// (0.xx). Columns are right-aligned and separated by two spaces; values that
// were not measured, and heads missing from a round, show as "-". It is
// meant for the CLI's final table.
func WriteTable(w io.Writer, s Schema, rounds []Round) error {
	header := make([]string, 0, len(s.Heads)+4)
	header = append(header, "round")
	header = append(header, s.Heads...)
	header = append(header, "dominance", "loss", "seconds")
	rows := [][]string{header}
	for _, r := range rounds {
		row := make([]string, 0, len(header))
		row = append(row, strconv.Itoa(r.Round))
		for i := range s.Heads {
			v := math.NaN()
			if i < len(r.Heads) {
				v = r.Heads[i]
			}
			row = append(row, tableFloat(v, 4))
		}
		row = append(row, tableFloat(r.Dominance, 3), tableFloat(r.TrainLoss, 4), tableFloat(r.Seconds, 2))
		rows = append(rows, row)
	}
	width := make([]int, len(header))
	for _, row := range rows {
		for i, cell := range row {
			width[i] = max(width[i], utf8.RuneCountInString(cell))
		}
	}
	var b strings.Builder
	for _, row := range rows {
		for i, cell := range row {
			if i > 0 {
				b.WriteString("  ")
			}
			b.WriteString(strings.Repeat(" ", width[i]-utf8.RuneCountInString(cell)))
			b.WriteString(cell)
		}
		b.WriteByte('\n')
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("metrics: write table: %w", err)
	}
	return nil
}

func tableFloat(v float64, prec int) string {
	if math.IsNaN(v) {
		return "-"
	}
	return strconv.FormatFloat(v, 'f', prec, 64)
}
