package sweep

import (
	"context"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeSpec(t *testing.T, out string) *Spec {
	t.Helper()
	base := filepath.Join(t.TempDir(), "base.yaml")
	yml := "rounds: 2\nclients: 4\nclients_per_round: 2\ndata:\n  min_size: 5\n  synthetic:\n    train_per_class: 30\n    test_per_class: 10\n"
	if err := os.WriteFile(base, []byte(yml), 0o644); err != nil {
		t.Fatal(err)
	}
	return &Spec{
		Base: base, OutDir: out, Methods: []string{"fedavg", "fedcmi"}, Seeds: []uint64{1, 2},
		Grid: map[string][]string{"data.alpha": {"1e8", "1"}},
	}
}

func TestCells(t *testing.T) {
	s := writeSpec(t, t.TempDir())
	cells, err := s.Cells()
	if err != nil {
		t.Fatal(err)
	}
	if len(cells) != 8 {
		t.Fatalf("%d cells, want 2 settings x 2 methods x 2 seeds", len(cells))
	}
	c := cells[5] // second setting, fedavg, seed 2
	if c.Setting != "data.alpha=1" || c.Method != "fedavg" || c.Seed != 2 || c.Config.Data.Alpha != 1 || c.Config.Rounds != 2 {
		t.Fatalf("cell %+v", c)
	}
	if !strings.HasSuffix(c.Dir, filepath.Join("data.alpha=1", "fedavg-seed2")) {
		t.Fatalf("dir %s", c.Dir)
	}
	s.Grid["data.gamma"] = []string{"1"}
	if _, err := s.Cells(); err == nil {
		t.Fatal("unknown grid field accepted")
	}
}

func TestRunResumesAndSummarizes(t *testing.T) {
	out := t.TempDir()
	s := writeSpec(t, out)
	s.Grid = map[string][]string{"data.alpha": {"1"}}
	quiet := slog.New(slog.DiscardHandler)
	var progress strings.Builder
	if err := Run(context.Background(), s, quiet, &progress); err != nil {
		t.Fatal(err)
	}
	if strings.Count(progress.String(), "after 2 rounds") != 4 {
		t.Fatalf("progress:\n%s", progress.String())
	}
	// A second run finds every cell done.
	progress.Reset()
	if err := Run(context.Background(), s, quiet, &progress); err != nil {
		t.Fatal(err)
	}
	if strings.Count(progress.String(), "skipped") != 4 {
		t.Fatalf("rerun ran cells again:\n%s", progress.String())
	}
	md, err := os.ReadFile(filepath.Join(out, "summary.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(md), "| data.alpha=1 | fedavg | 2 |") || !strings.Contains(string(md), "| data.alpha=1 | fedcmi | 2 |") {
		t.Fatalf("summary.md:\n%s", md)
	}
	cells, _ := s.Cells()
	rows, err := Table(cells)
	if err != nil || len(rows) != 2 || rows[0].Runs != 2 || math.IsNaN(rows[0].Mean[0]) || rows[0].Std[0] < 0 {
		t.Fatalf("rows %+v, %v", rows, err)
	}
	if _, err := os.Stat(filepath.Join(out, "summary.csv")); err != nil {
		t.Fatal(err)
	}
}

// TestShippedSweeps expands every sweep file in configs/ (from the
// repository root, where their paths are relative to).
func TestShippedSweeps(t *testing.T) {
	t.Chdir("..")
	files, err := filepath.Glob(filepath.Join("configs", "sweep-*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no sweep files: %v", err)
	}
	for _, f := range files {
		s, err := Load(f)
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if _, err := s.Cells(); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}
