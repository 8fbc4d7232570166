package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fedcmi/fedcmi/config"
)

func TestExitCodes(t *testing.T) {
	out := t.TempDir()
	for _, tc := range []struct {
		args []string
		code int
		want string // in stdout+stderr
	}{
		{nil, 2, "Usage"},
		{[]string{"help"}, 0, "simulate"},
		{[]string{"help", "simulate"}, 0, "-fedcmi.alpha"},
		{[]string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{[]string{"simulate", "-no-such-flag"}, 2, "no-such-flag"},
		{[]string{"simulate", "-train.lr", "fast"}, 2, "not a number"},
		{[]string{"simulate", "stray"}, 2, `unexpected argument "stray"`},
		{[]string{"simulate", "-train.lr", "0", "-out_dir", out}, 1, "train.lr: must be in (0, 10]"},
		{[]string{"simulate", "-train.lr", "inf", "-out_dir", out}, 1, "train.lr: must be a finite number"},
		{[]string{"simulate", "-train.batch_size", "1000000000", "-out_dir", out}, 1, "train.batch_size: must be in [1, 65536]"},
		{[]string{"simulate", "-train.batch_size", "60000", "-out_dir", out}, 1, "train.batch_size: 60000 is larger than the largest client"},
		{[]string{"simulate", "-c", filepath.Join(out, "missing.yaml")}, 1, "missing.yaml"},
		{[]string{"table"}, 2, "no run directories"},
		{[]string{"table", filepath.Join(out, "missing")}, 1, "missing"},
		{[]string{"help", "sweep"}, 0, "-parallel"},
		{[]string{"sweep", "-parallel", "-1", "-c", "x.yaml"}, 2, "-parallel -1"},
		{[]string{"sweep"}, 2, "a sweep file is required"},
		{[]string{"report"}, 2, "no run directories"},
		{[]string{"report", "-band", "wide", out}, 2, "band \"wide\""},
		{[]string{"report", "-o", filepath.Join(out, "r"), filepath.Join(out, "missing")}, 1, "missing"},
		{[]string{"version"}, 0, "fedcmi"},
	} {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), tc.args, &stdout, &stderr)
		all := stdout.String() + stderr.String()
		if code != tc.code || !strings.Contains(all, tc.want) {
			t.Errorf("fedcmi %v: exit %d, want %d; output should contain %q:\n%s", tc.args, code, tc.code, tc.want, all)
		}
	}
}

func TestSimulateAndTable(t *testing.T) {
	out := t.TempDir()
	cfg := filepath.Join(out, "exp.yaml")
	yml := "rounds: 2\nclients: 4\nclients_per_round: 2\ndata:\n  min_size: 5\n  synthetic:\n    train_per_class: 30\n    test_per_class: 10\n"
	if err := os.WriteFile(cfg, []byte(yml), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"fedavg", "fedcmi"} {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), []string{"simulate", "-c", cfg, "-out_dir", out, "-method", m}, &stdout, &stderr)
		if code != 0 || !strings.Contains(stdout.String(), "round   2/2") || !strings.Contains(stdout.String(), "final accuracy") {
			t.Fatalf("simulate %s: exit %d\n%s\n%s", m, code, stdout.String(), stderr.String())
		}
	}
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"table", filepath.Join(out, "fedavg-synthetic-seed1"), filepath.Join(out, "fedcmi-synthetic-seed1")}, &stdout, &stderr)
	if code != 0 || !strings.Contains(stdout.String(), "| fedavg | 1 |") || !strings.Contains(stdout.String(), "| fedcmi | 1 |") {
		t.Fatalf("table: exit %d\n%s\n%s", code, stdout.String(), stderr.String())
	}
	stdout.Reset()
	rep := filepath.Join(out, "report")
	code = run(context.Background(), []string{"report", "-o", rep, out}, &stdout, &stderr)
	if code != 0 || !strings.Contains(stdout.String(), "2 runs, 2 groups, 4 figures") {
		t.Fatalf("report: exit %d\n%s\n%s", code, stdout.String(), stderr.String())
	}
	for _, name := range []string{"report.html", "summary.md", "accuracy-all.png", "accuracy-all.svg", "dominance-all.svg"} {
		if _, err := os.Stat(filepath.Join(rep, name)); err != nil {
			t.Error(err)
		}
	}

	// A tuning run says what it was evaluated on.
	stdout.Reset()
	code = run(context.Background(), []string{"simulate", "-c", cfg, "-out_dir", out, "-name", "val", "-data.validation", "0.2"}, &stdout, &stderr)
	summary, err := os.ReadFile(filepath.Join(out, "val", "summary.json"))
	if code != 0 || !strings.Contains(stdout.String(), "(validation set)") || err != nil || !strings.Contains(string(summary), `"evaluated_on": "validation"`) {
		t.Errorf("simulate with data.validation: exit %d, summary %s (%v)\n%s", code, summary, err, stdout.String())
	}

	// A stopped run is left out of a comparison unless -unfinished.
	stopped := filepath.Join(out, "stopped")
	if err := os.CopyFS(stopped, os.DirFS(filepath.Join(out, "fedcmi-synthetic-seed1"))); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(stopped, "summary.json")); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args         []string
		rows, stderr string
	}{
		{[]string{"table", filepath.Join(out, "fedavg-synthetic-seed1"), stopped}, "| fedcmi", "left out 1 unfinished run(s)"},
		{[]string{"table", "-unfinished", filepath.Join(out, "fedavg-synthetic-seed1"), stopped}, "| fedcmi | 1 |", ""},
	} {
		stdout.Reset()
		stderr.Reset()
		code := run(context.Background(), tc.args, &stdout, &stderr)
		has := strings.Contains(stdout.String(), tc.rows)
		noted := tc.stderr != "" && strings.Contains(stderr.String(), tc.stderr) || tc.stderr == "" && stderr.Len() == 0
		if code != 0 || has != (tc.stderr == "") || !noted {
			t.Errorf("%v: exit %d\n%s\n%s", tc.args, code, stdout.String(), stderr.String())
		}
	}
	stderr.Reset()
	if code := run(context.Background(), []string{"table", stopped}, &stdout, &stderr); code == 0 || !strings.Contains(stderr.String(), "no finished run") {
		t.Errorf("table of a stopped run alone: exit %d\n%s", code, stderr.String())
	}
}

// TestREADMEReference keeps the README's configuration reference equal to
// what the code documents (run `go run ./cmd/fedcmi config -markdown`).
func TestREADMEReference(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var ref bytes.Buffer
	if err := config.WriteReference(&ref, true); err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(readme, ref.Bytes()) {
		t.Fatal("README.md's configuration reference is out of date: paste the output of `go run ./cmd/fedcmi config -markdown`")
	}
}

// TestDefaultYAML keeps configs/default.yaml equal to what `fedcmi config
// -yaml` prints (below its two comment lines), with relative paths.
func TestDefaultYAML(t *testing.T) {
	file, err := os.ReadFile("../../configs/default.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"config", "-yaml"}, &stdout, &stderr); code != 0 {
		t.Fatalf("config -yaml: exit %d\n%s", code, stderr.String())
	}
	_, body, _ := strings.Cut(string(file), "\n# `fedcmi config -yaml`: copy it to start your own.\n")
	if body != stdout.String() {
		t.Error("configs/default.yaml is out of date: keep its two comment lines and paste `go run ./cmd/fedcmi config -yaml` below them")
	}
	if !strings.Contains(stdout.String(), "cache_dir: cache\n") {
		t.Errorf("config -yaml does not print the default's relative cache_dir:\n%s", stdout.String())
	}
}

// TestSweepInterrupted: a cancelled sweep (Ctrl-C) starts no cell, exits
// 130 and says so.
func TestSweepInterrupted(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "sweep.yaml")
	if err := os.WriteFile(file, []byte("out_dir: "+filepath.Join(dir, "out")+"\nmethods: [fedavg]\nseeds: [1, 2]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var stdout, stderr bytes.Buffer
	code := run(ctx, []string{"sweep", "-c", file, "-parallel", "2"}, &stdout, &stderr)
	if code != 130 || !strings.Contains(stderr.String(), "interrupted") {
		t.Fatalf("exit %d\n%s\n%s", code, stdout.String(), stderr.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "out", "default", "fedavg-seed1")); err == nil {
		t.Error("a cell started after the interruption")
	}
}

// TestOnlyCancelled: a stop is reported as a plain interruption only when
// nothing else failed with it (a summary that could not be saved, say).
func TestOnlyCancelled(t *testing.T) {
	save := errors.New("open out/summary.md: is a directory")
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"cancelled", context.Canceled, true},
		{"wrapped", fmt.Errorf("sweep: %w", context.Canceled), true},
		{"joined cancellations", errors.Join(fmt.Errorf("a: %w", context.Canceled), context.Canceled), true},
		{"with a failed save", errors.Join(fmt.Errorf("sweep: %w", context.Canceled), save), false},
		{"wrapped join with a failed save", fmt.Errorf("sim: %w", errors.Join(context.Canceled, save)), false},
		{"another error", save, false},
	} {
		if got := onlyCancelled(tc.err); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}
