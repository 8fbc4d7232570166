package sim

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/fedcmi/fedcmi/internal/fedtest"
)

// TestClientStore: every client's newest state is loaded, later rounds
// overriding earlier ones, and a round's file goes once all its clients
// have newer states.
func TestClientStore(t *testing.T) {
	dir := filepath.Join(t.TempDir(), ClientStateDir)
	files := func() []string {
		es, _ := os.ReadDir(dir)
		var out []string
		for _, e := range es {
			out = append(out, e.Name())
		}
		return out
	}
	s := newClientStore(dir)
	steps := []struct {
		round         int
		states        map[string][]byte
		saved, pruned []string // files after save, after commit
	}{
		{1, map[string][]byte{"a": []byte("a1"), "b": []byte("b1")}, []string{"round-000001.state"}, []string{"round-000001.state"}},
		{2, map[string][]byte{"a": []byte("a2")}, []string{"round-000001.state", "round-000002.state"}, []string{"round-000001.state", "round-000002.state"}},
		{3, nil, []string{"round-000001.state", "round-000002.state"}, []string{"round-000001.state", "round-000002.state"}},
		// b's newest state moves on: round 1's file goes, but only once
		// the checkpoint of round 4 is written.
		{4, map[string][]byte{"b": []byte("b4"), "c": []byte("c4")},
			[]string{"round-000001.state", "round-000002.state", "round-000004.state"}, []string{"round-000002.state", "round-000004.state"}},
	}
	for _, st := range steps {
		if err := s.save(st.round, st.states); err != nil {
			t.Fatal(err)
		}
		if got := files(); !slices.Equal(got, st.saved) {
			t.Fatalf("after saving round %d: files %v, want %v", st.round, got, st.saved)
		}
		if err := s.commit(); err != nil {
			t.Fatal(err)
		}
		if got := files(); !slices.Equal(got, st.pruned) {
			t.Fatalf("after the checkpoint of round %d: files %v, want %v", st.round, got, st.pruned)
		}
	}
	// A crash after saving round 5, before its checkpoint: the resume
	// from round 4 reads the newest states up to round 4, drops round 5's
	// file and keeps pruning.
	if err := s.save(5, map[string][]byte{"a": []byte("a5"), "b": []byte("b5")}); err != nil {
		t.Fatal(err)
	}
	r := newClientStore(dir)
	got, err := r.load(4)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || string(got["a"]) != "a2" || string(got["b"]) != "b4" || string(got["c"]) != "c4" {
		t.Fatalf("loaded %q", got)
	}
	if got := files(); !slices.Equal(got, []string{"round-000002.state", "round-000004.state"}) {
		t.Fatalf("after the resume: files %v", got)
	}
	if err := r.save(5, map[string][]byte{"a": []byte("a5")}); err != nil {
		t.Fatal(err)
	}
	if err := r.commit(); err != nil {
		t.Fatal(err)
	}
	if got := files(); !slices.Equal(got, []string{"round-000004.state", "round-000005.state"}) {
		t.Fatalf("after the resumed round: files %v", got)
	}
	// A damaged file is refused with its name.
	bad := filepath.Join(dir, "round-000004.state")
	if err := os.WriteFile(bad, []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := newClientStore(dir).load(10); err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("damaged file: %v", err)
	}
	// No directory: no states.
	if got, err := newClientStore(filepath.Join(t.TempDir(), "none")).load(10); err != nil || len(got) != 0 {
		t.Errorf("no directory: %v, %v", got, err)
	}
}

// TestClientStatesAfterFailedSave: when writing the clients' states fails
// (a transient error: here a file where their folder goes), the checkpoint
// the stopped run then tries to write does not go without those states,
// and a resume once the folder is back gives the uninterrupted run's
// results.
func TestClientStatesAfterFailedSave(t *testing.T) {
	cfg := small(t, "scaffold")
	cfg.Rounds = 4
	want, err := Run(context.Background(), cfg, Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	cfg.OutDir = t.TempDir()
	dir := filepath.Join(cfg.OutDir, cfg.RunName())
	states := filepath.Join(dir, ClientStateDir)
	var saved map[string][]byte
	opt := Options{Logger: quiet, checkpointEvery: 1}
	opt.Progress = &lineHook{f: func(n int) {
		if n == 2 { // round 2 reported; its checkpoint comes next
			saved = snapshot(t, dir)
			if err := os.RemoveAll(states); err != nil {
				t.Error(err)
			}
			if err := os.WriteFile(states, []byte("x"), 0o644); err != nil {
				t.Error(err)
			}
		}
	}}
	if _, err := Run(context.Background(), cfg, opt); err == nil || !strings.Contains(err.Error(), "client states") {
		t.Fatalf("run whose state write fails: %v, want the failure", err)
	}
	if err := os.Remove(states); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(states, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, b := range saved {
		if filepath.Dir(name) == ClientStateDir {
			if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	got, err := Run(context.Background(), cfg, Options{Logger: quiet, Resume: true})
	if err != nil {
		t.Fatalf("resume: %v", err)
	}
	fedtest.SameRounds(t, got.Rounds, want.Rounds)
	fedtest.SameModel(t, got.Dir, want.Dir)
}
