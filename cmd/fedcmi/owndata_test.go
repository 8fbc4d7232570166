package main

import (
	"context"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"codeberg.org/sbinet/npyio/npz"

	"github.com/fedcmi/fedcmi/config"
	"github.com/fedcmi/fedcmi/data"
	"github.com/fedcmi/fedcmi/sim"
)

// writeSet writes the rows idx of set as an npz file (np.savez layout).
func writeSet(t *testing.T, path string, set *data.Set, idx []int) {
	t.Helper()
	arrays := map[string]any{}
	for m, name := range set.Modalities {
		rows := make([][]float32, len(idx))
		for k, i := range idx {
			rows[k] = append([]float32(nil), set.Row(m, i)...)
		}
		arrays[name+".npy"] = rows
	}
	labels := make([]int64, len(idx))
	for k, i := range idx {
		labels[k] = int64(set.Labels[i])
	}
	arrays["labels.npy"] = labels
	if err := npz.Write(path, arrays); err != nil {
		t.Fatal(err)
	}
}

func span(lo, hi int) []int {
	out := make([]int, 0, hi-lo)
	for i := lo; i < hi; i++ {
		out = append(out, i)
	}
	return out
}

// TestDeployOwnData: participants that join with their own npz data sets
// (one holding both modalities, one only audio) and a coordinator that
// evaluates on its own test set complete a federation over mTLS.
func TestDeployOwnData(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	syn := config.Default()
	syn.Data.Synthetic.TrainPerClass, syn.Data.Synthetic.TestPerClass = 20, 10
	train, test, _, err := sim.LoadData(context.Background(), &syn, nil)
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	half := train.Len() / 2
	for _, d := range []struct {
		dir        string
		train, tst []int
	}{
		{"coordinator", span(0, 10), span(0, test.Len())},
		{"site-a", span(0, half), span(0, 5)},
		{"site-b", span(half, train.Len()), span(0, 5)},
	} {
		if err := os.MkdirAll(filepath.Join(root, d.dir), 0o755); err != nil {
			t.Fatal(err)
		}
		writeSet(t, filepath.Join(root, d.dir, "train.npz"), train, d.train)
		writeSet(t, filepath.Join(root, d.dir, "test.npz"), test, d.tst)
	}
	f := newFederation(t, `rounds: 2
clients: 2
clients_per_round: 2
train:
  epochs: 1
model:
  hidden: [16]
  embed_dim: 16
data:
  source: npz
  dir: `+filepath.Join(root, "coordinator")+`
  modalities: [audio, visual]
  num_classes: 6
  standardize: false
  partition: iid
  min_size: 1
`)
	// Certificates named after the sites, not client-000i.
	f.certs = filepath.Join(f.dir, "site-certs")
	if code := run(context.Background(), []string{"certs", "-out", f.certs, "-hosts", "127.0.0.1", "-participants", "site-a,site-b"}, io.Discard, io.Discard); code != 0 {
		t.Fatal("certs failed")
	}
	srv, addr := f.serve(t, "serve", "127.0.0.1:0", nil)
	a := start(t, f.dir, "site-a", nil, "join", "-c", f.cfgFile, "-server", addr, "-participant", "site-a",
		"-data", filepath.Join(root, "site-a"), "-certs", f.certs)
	b := start(t, f.dir, "site-b", nil, "join", "-c", f.cfgFile, "-server", addr, "-participant", "site-b",
		"-data", filepath.Join(root, "site-b"), "-modalities", "audio", "-certs", f.certs)
	if err := srv.wait(t, 60*time.Second); err != nil {
		t.Fatalf("serve: %v", err)
	}
	for _, p := range []*proc{a, b} {
		if err := p.wait(t, 20*time.Second); err != nil {
			t.Errorf("%s: %v", p.log, err)
		}
	}
	for _, r := range readRounds(t, filepath.Join(f.dir, "runs", f.cfg.RunName())) {
		if r.Clients != 2 || r.Failures != 0 || math.IsNaN(r.Heads[0]) || math.IsNaN(r.TrainLoss) {
			t.Errorf("round %d: %+v", r.Round, r)
		}
	}
	srvLog, _ := os.ReadFile(srv.log)
	for _, want := range []string{`participant=site-a modalities=audio,visual samples=60`, `participant=site-b modalities=audio samples=60`} {
		if !strings.Contains(string(srvLog), want) {
			t.Errorf("serve log lacks %s", want)
		}
	}
}
