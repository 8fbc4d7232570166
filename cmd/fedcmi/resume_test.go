package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSimulateResumeFlags runs simulate -resume as a user would: refused
// with the differing fields named, a completed run reported as it is, and
// -v logging the graph compile times; stderr, not a terminal here, gets
// no status line.
func TestSimulateResumeFlags(t *testing.T) {
	out := t.TempDir()
	cfg := filepath.Join(out, "exp.yaml")
	yml := "rounds: 2\nclients: 4\nclients_per_round: 2\nmethod: fedavg\ndata:\n  min_size: 5\n  synthetic:\n    train_per_class: 30\n    test_per_class: 10\n"
	if err := os.WriteFile(cfg, []byte(yml), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args       []string
		code       int
		want, not  []string // in stdout+stderr
		wantStderr string
	}{
		{[]string{"-v"}, 0, []string{"round   2/2", "compiled graph"}, []string{"\r"}, ""},
		{nil, 1, []string{"-resume", "-overwrite"}, nil, ""},
		{[]string{"-resume", "-rounds", "3", "-train.lr", "0.2"}, 1, []string{"rounds: 2 -> 3", "train.lr: 0.01 -> 0.2", "-overwrite"}, nil, ""},
		{[]string{"-resume", "-parallel", "2"}, 0, []string{"nothing to resume", "final accuracy after round 2"}, []string{"round   1/2"}, ""},
	} {
		var stdout, stderr bytes.Buffer
		args := append([]string{"simulate", "-c", cfg, "-out_dir", out}, tc.args...)
		code := run(context.Background(), args, &stdout, &stderr)
		all := stdout.String() + stderr.String()
		bad := code != tc.code
		for _, w := range tc.want {
			bad = bad || !strings.Contains(all, w)
		}
		for _, w := range tc.not {
			bad = bad || strings.Contains(all, w)
		}
		if bad {
			t.Errorf("fedcmi %v: exit %d, want %d; output should contain %q and not %q:\n%s", args, code, tc.code, tc.want, tc.not, all)
		}
	}
}

// TestSweepRerunChanged: a sweep whose base changed refuses, exit 1, with
// the flag to use; -rerun_changed runs the cells again; -v prints every
// round of every cell on stderr.
func TestSweepRerunChanged(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(dir, "base.yaml")
	yml := "clients: 4\nclients_per_round: 2\ndata:\n  min_size: 5\n  synthetic:\n    train_per_class: 30\n    test_per_class: 10\n"
	file := filepath.Join(dir, "sweep.yaml")
	if err := os.WriteFile(file, []byte("base: "+base+"\nout_dir: "+filepath.Join(dir, "out")+"\nmethods: [fedavg]\nseeds: [1]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		rounds         string
		args           []string
		code           int
		stdout, stderr string
	}{
		{"2", []string{"-v"}, 0, "after 2 rounds", "[1/1] default fedavg seed 1: round   2/2"},
		{"3", nil, 1, "", "rounds: 2 -> 3"},
		{"3", nil, 1, "", "-rerun_changed"},
		{"3", []string{"-rerun_changed"}, 0, "after 3 rounds", ""},
		{"3", nil, 0, "skipped", ""},
	} {
		if err := os.WriteFile(base, []byte("rounds: "+tc.rounds+"\n"+yml), 0o644); err != nil {
			t.Fatal(err)
		}
		var stdout, stderr bytes.Buffer
		args := append([]string{"sweep", "-c", file}, tc.args...)
		code := run(context.Background(), args, &stdout, &stderr)
		if code != tc.code || !strings.Contains(stdout.String(), tc.stdout) || !strings.Contains(stderr.String(), tc.stderr) {
			t.Errorf("rounds %s, fedcmi %v: exit %d, want %d, stdout with %q, stderr with %q:\n%s\n%s",
				tc.rounds, args, code, tc.code, tc.stdout, tc.stderr, stdout.String(), stderr.String())
		}
	}
}
