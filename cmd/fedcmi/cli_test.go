package main

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestHelp: help asked for goes to stdout with exit status 0, in one
// format for every command (usage line, description, flags), wrapped to
// $COLUMNS; mistakes go to stderr with status 2.
func TestHelp(t *testing.T) {
	t.Setenv("COLUMNS", "64")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-h"}, "Commands:"},
		{[]string{"--help"}, "eval"},
		{[]string{"help"}, "Commands:"},
		{[]string{"simulate", "-h"}, "-train.lr number"},
		{[]string{"help", "serve"}, "-min_results int"},
		{[]string{"help", "join"}, "-give_up duration"},
		{[]string{"help", "report"}, "-ymin float"},
		{[]string{"help", "sweep"}, "-rounds integer"},
		{[]string{"config", "-help"}, "-markdown"},
	} {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), tc.args, &stdout, &stderr)
		if code != 0 || stderr.Len() > 0 || !strings.Contains(stdout.String(), tc.want) {
			t.Errorf("fedcmi %v: exit %d, stderr %q; stdout should contain %q:\n%s", tc.args, code, stderr.String(), tc.want, stdout.String())
		}
	}
	for _, c := range commands() {
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), []string{"help", c.Name}, &stdout, &stderr); code != 0 {
			t.Errorf("help %s: exit %d", c.Name, code)
		}
		out := stdout.String()
		if !strings.HasPrefix(out, "usage: fedcmi "+c.Name) || c.Name != "version" && !strings.Contains(out, "\nFlags:\n") {
			t.Errorf("help %s does not have the common format:\n%s", c.Name, out)
		}
		if strings.Contains(out, "\n\n\n") {
			t.Errorf("help %s has a double blank line", c.Name)
		}
		// Everything but the descriptions' verbatim (indented) blocks fits
		// 64 columns, unless a single word is longer.
		verbatim := map[string]bool{}
		for _, l := range strings.Split(c.Long, "\n") {
			if strings.HasPrefix(l, " ") {
				verbatim[strings.TrimRight(l, " ")] = true
			}
		}
		for _, l := range strings.Split(out, "\n") {
			if len(l) > 64 && !verbatim[l] && strings.Contains(strings.TrimSpace(l[:64]), " ") && !strings.HasPrefix(l, "  -") {
				t.Errorf("help %s: line of %d columns: %q", c.Name, len(l), l)
			}
		}
		// No flag of the command in another style than snake_case.
		for _, l := range strings.Split(out, "\n") {
			if f := strings.Fields(l); strings.HasPrefix(l, "  -") && strings.Contains(f[0][1:], "-") {
				t.Errorf("help %s lists the kebab-case flag %s", c.Name, f[0])
			}
		}
	}
}

// TestUsageMistakes: a mistyped flag or command names the closest one; an
// old flag spelling still works, with a note.
func TestUsageMistakes(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		code int
		want string // in stderr
	}{
		{[]string{"simulate", "-roundz", "3"}, 2, "unknown flag -roundz; did you mean -rounds?"},
		{[]string{"simulate", "-lr", "3"}, 2, "did you mean -server.lr or -train.lr?"},
		{[]string{"simulate", "-clients-per-round", "3"}, 2, "did you mean -clients_per_round?"},
		{[]string{"serve", "-min-result", "1"}, 2, "did you mean -min_results?"},
		{[]string{"simulate", "-frobnicate"}, 2, "unknown flag -frobnicate\n"},
		{[]string{"simulat"}, 2, `unknown command "simulat"; did you mean "simulate"?`},
		{[]string{"report", "-o", filepath.Join(dir, "r"), filepath.Join(dir, "missing")}, 1, "-o is deprecated, use -out"},
		{[]string{"simulate", "-clients", "500", "-out_dir", dir}, 1, "hint: the clients cannot all get enough samples: lower -clients or -data.min_size"},
	} {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), tc.args, &stdout, &stderr)
		if code != tc.code || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("fedcmi %v: exit %d, want %d; stderr should contain %q:\n%s", tc.args, code, tc.code, tc.want, stderr.String())
		}
	}
}

func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"-version"}, {"--version"}} {
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), args, &stdout, &stderr); code != 0 || !strings.HasPrefix(stdout.String(), "fedcmi ") {
			t.Errorf("fedcmi %v: exit %d: %q %q", args, code, stdout.String(), stderr.String())
		}
	}
}

// TestConfigResolved: config -c FILE prints the experiment the file and
// the flags resolve to; a file's mistakes come in plain words.
func TestConfigResolved(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(good, []byte("rounds: 7\ntrain:\n  lr: 0.05\n"), 0o644)
	os.WriteFile(bad, []byte("rounds: 7\ntrain:\n  lr: fast\n"), 0o644)
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"config", "-c", good, "-seed", "3"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	for _, want := range []string{"rounds: 7\n", "seed: 3\n", "  lr: 0.05\n", "method: fedcmi\n"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("config -c lacks %q:\n%s", want, stdout.String())
		}
	}
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"config", "-c", bad}, 1, `bad.yaml: line 3: "fast" is not a number`},
		{[]string{"config", "-c", good, "-train.lr", "0"}, 1, "train.lr: must be in (0, 10]"},
		{[]string{"config", "-c", good, "-method", "fedsgd"}, 1, `method: "fedsgd" is not one of`},
		{[]string{"config", "-c", good, "-method", "scaffold", "-dp.clip", "1"}, 1, "dp.clip: differential privacy is not available for method scaffold"},
		{[]string{"config", "-markdown", "-c", good}, 2, "does not go with"},
	} {
		stdout.Reset()
		stderr.Reset()
		if code := run(context.Background(), tc.args, &stdout, &stderr); code != tc.code || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("fedcmi %v: exit %d, want %d with %q:\n%s", tc.args, code, tc.code, tc.want, stderr.String())
		}
	}
}

// TestSweepOverrides: field flags change every cell of a sweep; the fields
// the sweep sets or varies are refused.
func TestSweepOverrides(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "sweep.yaml")
	out := filepath.Join(dir, "out")
	spec := "out_dir: " + out + "\nmethods: [fedavg]\nseeds: [1]\ngrid:\n  data.alpha: [1]\n"
	if err := os.WriteFile(file, []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-method", "fedprox"}, "-method: the sweep file's methods list sets it per cell"},
		{[]string{"-data.alpha", "5"}, "-data.alpha: the sweep's grid varies it"},
		{[]string{"-name", "x"}, "-name: the sweep sets it per cell"},
	} {
		var stdout, stderr bytes.Buffer
		args := append([]string{"sweep", "-c", file}, tc.args...)
		if code := run(context.Background(), args, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("fedcmi %v: exit %d, want 2 with %q:\n%s", args, code, tc.want, stderr.String())
		}
	}
	out = filepath.Join(dir, "moved")
	var stdout, stderr bytes.Buffer
	args := []string{"sweep", "-c", file, "-out_dir", out, "-rounds", "1", "-clients", "4", "-clients_per_round", "2", "-data.min_size", "5",
		"-data.synthetic.train_per_class", "30", "-data.synthetic.test_per_class", "10"}
	if code := run(context.Background(), args, &stdout, &stderr); code != 0 {
		t.Fatalf("sweep with overrides: exit %d\n%s\n%s", code, stdout.String(), stderr.String())
	}
	cfg, err := os.ReadFile(filepath.Join(out, "data.alpha=1", "fedavg-seed1", "config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(cfg), "\nrounds: 1\n") || !strings.Contains(string(cfg), "clients: 4\n") {
		t.Errorf("the cell's config does not carry the overrides:\n%s", cfg)
	}
}

// TestReportDefaultDir: without -out, report writes into the folder report
// beside the runs, and it never writes into a folder of Go source files.
func TestReportDefaultDir(t *testing.T) {
	dir := t.TempDir()
	yml := filepath.Join(dir, "exp.yaml")
	os.WriteFile(yml, []byte("rounds: 1\nclients: 4\nclients_per_round: 2\ndata:\n  min_size: 5\n  synthetic:\n    train_per_class: 30\n    test_per_class: 10\n"), 0o644)
	runs := filepath.Join(dir, "runs")
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"simulate", "-c", yml, "-out_dir", runs}, &stdout, &stderr); code != 0 {
		t.Fatalf("simulate: %s", stderr.String())
	}
	for _, tc := range []struct {
		paths []string
		want  string
	}{
		{[]string{runs}, filepath.Join(runs, "report")},
		{[]string{filepath.Join(runs, "fedcmi-seed1"), runs}, filepath.Join(runs, "report")},
	} {
		got, err := defaultReportDir(tc.paths)
		if err != nil || got != tc.want {
			t.Errorf("defaultReportDir(%v) = %q, %v; want %q", tc.paths, got, err, tc.want)
		}
	}
	stdout.Reset()
	if code := run(context.Background(), []string{"report", runs}, &stdout, &stderr); code != 0 {
		t.Fatalf("report: exit %d: %s", code, stderr.String())
	}
	if _, err := os.Stat(filepath.Join(runs, "report", "report.html")); err != nil {
		t.Errorf("report without -out: %v\n%s", err, stdout.String())
	}
	src := filepath.Join(dir, "pkg")
	os.MkdirAll(src, 0o755)
	os.WriteFile(filepath.Join(src, "x.go"), []byte("package x\n"), 0o644)
	stderr.Reset()
	if code := run(context.Background(), []string{"report", "-out", src, runs}, &stdout, &stderr); code != 1 || !strings.Contains(stderr.String(), "holds Go source files") {
		t.Errorf("report into a source folder: exit %d: %s", code, stderr.String())
	}
	if entries, _ := os.ReadDir(src); len(entries) != 1 {
		t.Errorf("report wrote into the source folder: %d entries", len(entries))
	}
}

// TestPlainLogs: the logger writes lists, maps and absent errors without
// Go's syntax.
func TestPlainLogs(t *testing.T) {
	var buf bytes.Buffer
	log := newLogger(&buf, false)
	var noErr error
	var nilPtr *os.PathError
	log.Info("x", "modalities", []string{"audio", "visual"}, "kinds", map[string]int{"b": 2, "a": 1},
		"pair", [2]string{"fac", "zer"}, "err", noErr, "perr", nilPtr, "fail", errors.New("boom"))
	got := buf.String()
	for _, want := range []string{"modalities=audio,visual", "kinds=a:1,b:2", "pair=fac,zer", "fail=boom"} {
		if !strings.Contains(got, want) {
			t.Errorf("log lacks %q: %s", want, got)
		}
	}
	for _, bad := range []string{"[", "map[", "<nil>", "err=", "perr="} {
		if strings.Contains(got, bad) {
			t.Errorf("log holds %q: %s", bad, got)
		}
	}
	_ = slog.LevelInfo
}
