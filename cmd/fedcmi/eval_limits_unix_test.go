//go:build unix

package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestEvalNonRegularFiles: a model or data file that is not a regular
// file is refused, naming it, before it is opened: a FIFO would block
// eval forever and /dev/zero would fill memory.
func TestEvalNonRegularFiles(t *testing.T) {
	runDir, _, _, _ := fakeRun(t, "")
	data := filepath.Join(runDir, "test.npz")
	writeZeros(t, data, 10)
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	type tc struct {
		name string
		args []string
		file string
	}
	cases := []tc{
		{"model fifo", []string{"-data", data, "-model", fifo}, fifo},
		{"model directory", []string{"-data", data, "-model", runDir}, runDir},
		{"data fifo", []string{"-data", fifo}, fifo},
	}
	if _, err := os.Stat("/dev/zero"); err == nil {
		cases = append(cases, tc{"model /dev/zero", []string{"-data", data, "-model", "/dev/zero"}, "/dev/zero"})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), append([]string{"eval", "-run", runDir}, tc.args...), &stdout, &stderr)
			if code != 1 || !strings.Contains(stderr.String(), tc.file+": not a regular file") {
				t.Errorf("exit %d, want 1 naming %s as not a regular file:\n%s", code, tc.file, stderr.String())
			}
		})
	}
}
