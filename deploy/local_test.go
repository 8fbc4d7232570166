package deploy

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"codeberg.org/sbinet/npyio/npz"

	"github.com/fedcmi/fedcmi/config"
	"github.com/fedcmi/fedcmi/data"
	"github.com/fedcmi/fedcmi/sim"
)

// writeSite writes a site's train.npz (and test.npz when test) of two
// modalities "audio" and "visual", rows rows, labels over three classes.
func writeSite(t *testing.T, dir string, rows int, test bool) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	names := []string{"train.npz"}
	if test {
		names = append(names, "test.npz")
	}
	for _, name := range names {
		a, v := make([][]float32, rows), make([][]float32, rows)
		labels := make([]int64, rows)
		for i := range a {
			a[i], v[i] = make([]float32, 6), make([]float32, 4)
			a[i][i%6], v[i][i%4] = 1, 1
			labels[i] = int64(i % 3)
		}
		if err := npz.Write(filepath.Join(dir, name), map[string]any{"audio.npy": a, "visual.npy": v, "labels.npy": labels}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestDataLocal: a site joining with its own data (join -data) needs only
// train.npz, trains on every row with the modalities it declares, and
// builds the coordinator's model (the same layout digest), whose own
// train.npz, of 30 rows for 20 clients, gives only the shapes.
func TestDataLocal(t *testing.T) {
	root := t.TempDir()
	writeSite(t, filepath.Join(root, "coordinator"), 30, true)
	writeSite(t, filepath.Join(root, "site"), 24, false)
	cfg := config.Default()
	cfg.Data.Source, cfg.Data.Modalities, cfg.Data.Standardize = "npz", []string{"audio", "visual"}, false
	coordinator := cfg
	coordinator.Data.Dir = filepath.Join(root, "coordinator")
	fed, err := sim.PrepareCoordinator(context.Background(), &coordinator, nil, 1)
	if err != nil {
		t.Fatal(err)
	}
	site := cfg
	loc, err := DataLocal(context.Background(), &site, filepath.Join(root, "site"), "site-c", []string{"audio"}, nil)
	if err != nil {
		t.Fatalf("a site without test.npz: %v", err)
	}
	if loc.Info.ID != "site-c" || loc.Info.Modalities != data.Mask(1) || loc.Info.NumSamples != 24 {
		t.Errorf("declares %+v, want site-c, audio only, 24 samples", loc.Info)
	}
	if LayoutDigest(loc.Layout) != LayoutDigest(fed.Engine.Layout()) {
		t.Error("the site's model differs from the coordinator's")
	}
}

// TestDataLocalClasses: a site (its training set as DataLocal reads it,
// sim.LoadTrain) whose training rows lack the last class
// still builds the federation's model when its test.npz has that class or
// data.num_classes is set; inferred from its training rows alone it would
// build a smaller one.
func TestDataLocalClasses(t *testing.T) {
	root := t.TempDir()
	site := filepath.Join(root, "site")
	writeSite(t, site, 30, true)
	two := make([]int64, 30)
	for i := range two {
		two[i] = int64(i % 2)
	}
	a, v := make([][]float32, 30), make([][]float32, 30)
	for i := range a {
		a[i], v[i] = make([]float32, 6), make([]float32, 4)
	}
	if err := npz.Write(filepath.Join(site, "train.npz"), map[string]any{"audio.npy": a, "visual.npy": v, "labels.npy": two}); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.Data.Source, cfg.Data.Modalities, cfg.Data.Standardize = "npz", []string{"audio", "visual"}, false
	classes := func(c config.Config) int {
		t.Helper()
		c.Data.Dir = site
		train, _, err := sim.LoadTrain(context.Background(), &c, nil)
		if err != nil {
			t.Fatal(err)
		}
		return train.NumClasses
	}
	if k := classes(cfg); k != 3 {
		t.Errorf("with test.npz holding class 2: %d classes, want 3", k)
	}
	// With the number of classes set, test.npz is not read (here it is
	// not even an npz file).
	if err := os.WriteFile(filepath.Join(site, "test.npz"), []byte("not an npz"), 0o644); err != nil {
		t.Fatal(err)
	}
	withK := cfg
	withK.Data.NumClasses = 3
	if k := classes(withK); k != 3 {
		t.Errorf("with data.num_classes 3: %d classes, want 3", k)
	}
	// Without test.npz and without the setting, the site's own labels.
	if err := os.Remove(filepath.Join(site, "test.npz")); err != nil {
		t.Fatal(err)
	}
	if k := classes(cfg); k != 2 {
		t.Errorf("from the training labels alone: %d classes, want 2", k)
	}
}
