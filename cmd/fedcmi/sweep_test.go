package main

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"
)

// TestSweepHelp: sweep's help shows -parallel's true default (0, not the
// experiment field's 2) and leaves out the field flags the sweep refuses,
// which it sets per cell (TestSweepOverrides: they stay refused).
func TestSweepHelp(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"sweep", "-h"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	flags, _, _ := strings.Cut(stdout.String(), "\nExperiment fields:")
	if !strings.Contains(flags, "\n  -parallel int ") {
		t.Errorf("sweep's own -parallel is not among its flags:\n%s", flags)
	}
	entries := helpEntries(stdout.String())
	for _, tc := range []struct {
		flag string
		want *regexp.Regexp // nil: left out of the help
	}{
		{"parallel", regexp.MustCompile(`\(default 0: the sweep file's parallel, else 1\)$`)},
		{"rounds", regexp.MustCompile(`\(default 30\)$`)},
		{"out_dir", regexp.MustCompile(`\(default runs\)$`)},
		{"method", nil},
		{"seed", nil},
		{"name", nil},
		{"overwrite", nil},
	} {
		entry, ok := entries[tc.flag]
		switch {
		case tc.want == nil && ok:
			t.Errorf("-%s is refused but in the help: %q", tc.flag, entry)
		case tc.want != nil && !tc.want.MatchString(entry):
			t.Errorf("-%s: help %q, want it matching %s", tc.flag, entry, tc.want)
		}
	}
}

// helpEntries maps each flag of a command's help to its entry, the lines
// wrapped joined by spaces.
func helpEntries(help string) map[string]string {
	entries := map[string]string{}
	name := ""
	for _, line := range strings.Split(help, "\n") {
		switch {
		case strings.HasPrefix(line, "  -"):
			name = strings.Fields(line)[0][1:]
			entries[name] = strings.TrimSpace(line)
		case name != "" && strings.HasPrefix(line, "  "):
			entries[name] += " " + strings.TrimSpace(line)
		default:
			name = ""
		}
	}
	return entries
}
