package model

import (
	"strings"
	"testing"
)

// TestGoOpsMode checks which graphs run their nodes in parallel: only a
// CNN's, trained one client at a time, and never against an explicit mode.
func TestGoOpsMode(t *testing.T) {
	mlp := tinyArch()
	cnn := cnnArch()
	for _, tc := range []struct {
		config  string
		arch    Arch
		clients int
		want    string
	}{
		{"", mlp, 1, "go:ops_sequential"},
		{"go", mlp, 2, "go:ops_sequential"},
		{"", cnn, 1, "go:num_executors=2"},
		{"go", cnn, 2, "go:ops_sequential"},
		{"go:parallelism=4", cnn, 2, "go:parallelism=4,ops_sequential"},
		{"go:parallelism=4", cnn, 1, "go:parallelism=4,num_executors=2"},
		{"go:num_executors=4", cnn, 1, "go:num_executors=4"},
		{"go:ops_parallel", mlp, 2, "go:ops_parallel"},
		{"go:ops_sequential", cnn, 1, "go:ops_sequential"},
		{"xla:cuda", mlp, 2, "xla:cuda"},
	} {
		if got := goOpsMode(tc.config, tc.arch, tc.clients); got != tc.want {
			t.Errorf("goOpsMode(%q, cnn=%v, %d) = %q, want %q", tc.config, tc.arch.hasCNN(), tc.clients, got, tc.want)
		}
	}
}

// TestBackendErrorSaysWhere: a bad backend from $GOMLX_BACKEND says so, as
// the user passed no -backend; one passed explicitly does not.
func TestBackendErrorSaysWhere(t *testing.T) {
	t.Setenv(BackendEnv, "bar")
	for _, tc := range []struct {
		config string
		env    bool
	}{{"", true}, {"baz", false}} {
		_, err := NewBackend(tc.config, tinyArch(), 1)
		if err == nil || strings.Contains(err.Error(), "$"+BackendEnv) != tc.env {
			t.Errorf("backend %q with $%s=bar: %v, want the variable named: %v", tc.config, BackendEnv, err, tc.env)
		}
	}
}
