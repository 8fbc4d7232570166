package sim

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"codeberg.org/sbinet/npyio/npz"

	"github.com/fedcmi/fedcmi/config"
	"github.com/fedcmi/fedcmi/model"
)

// TestSizeLimits: sizes that would allocate far beyond any machine (a
// batch size of 1e9 died with "fatal error: runtime: out of memory") are
// refused before anything is allocated, with an error naming the field;
// sizes within the bounds run.
func TestSizeLimits(t *testing.T) {
	wide := make([]int, config.MaxLayers)
	for i := range wide {
		wide[i] = config.MaxWidth
	}
	tests := []struct {
		name string
		mut  func(*config.Config)
		path string   // "" : runs
		want []string // substrings of the error
	}{
		{"batch beyond any", func(c *config.Config) { c.Train.BatchSize = 1_000_000_000 }, "train.batch_size", []string{"[1, 65536]"}},
		{"batch beyond the largest client", func(c *config.Config) { c.Train.BatchSize = 60000 }, "train.batch_size",
			[]string{"60000 is larger than the largest client", "use at most 256"}},
		{"batch up to the eval batch", func(c *config.Config) { c.Train.BatchSize = model.DefaultEvalBatch; c.Rounds = 1 }, "", nil},
		{"widest MLP", func(c *config.Config) {
			c.Model.Hidden = wide
			c.Clients, c.ClientsPerRound, c.Parallel, c.Data.MinSize = 100, 100, 100, 1
		}, "model.hidden", []string{"training this model needs about", "TiB", "of memory here", "model.hidden"}},
		{"widest embedding", func(c *config.Config) {
			c.Model.EmbedDim = config.MaxWidth
			c.Data.Synthetic.NumClasses = 2
			c.Model.Projector = "mlp"
			c.Clients, c.ClientsPerRound, c.Parallel, c.Data.Partition = 400, 400, 400, "iid"
			c.Data.Synthetic.TrainPerClass = 400
		}, "model.embed_dim", []string{"of memory here"}},
		{"a round's updates", func(c *config.Config) {
			c.Model.Hidden = []int{4096, 4096}
			c.Clients, c.ClientsPerRound, c.Data.MinSize, c.Data.Partition = 2000, 2000, 1, "iid"
			c.Data.Synthetic.TrainPerClass = 400
		}, "clients_per_round", []string{"holding the updates of 2000 clients for aggregation needs about", "GiB", "sample fewer clients"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := small(t, "fedavg")
			tc.mut(&cfg)
			_, err := Run(context.Background(), cfg, Options{Logger: quiet})
			if tc.path == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var fe *config.FieldError
			if !errors.As(err, &fe) || fe.Path != tc.path {
				t.Fatalf("want an error at %s, got %v", tc.path, err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			// Refused before the run directory is made.
			if _, err := os.Stat(filepath.Join(cfg.OutDir, cfg.RunName())); err == nil {
				t.Errorf("a run directory was created")
			}
		})
	}
}

// TestEstimateMemory checks the estimate's arithmetic on a small MLP and a
// small CNN counted by hand.
func TestEstimateMemory(t *testing.T) {
	mlp := model.DefaultArch([]string{"a", "b"}, []int{3, 5}, 4)
	mlp.Hidden, mlp.EmbedDim = []int{10}, 2
	// Parameters: encoders 3*10+10 + 10*2+2 = 62 and 5*10+10 + 22 = 82;
	// self and infiltration projectors 2*(2*2+2) per modality = 24;
	// classifiers 2*4+4 = 12 per modality = 24; fusion 4*4+4 = 20.
	const nParams = 62 + 82 + 24 + 24 + 20
	// Per sample: inputs 3+5; per modality hidden 10, four embeddings of 2
	// and logits 2*4; fusion 2*2+4: 60 in all, the largest 10.
	const inputs, sum, largest = 8, 60, 10
	est := estimateMemory(&mlp, 16, 2, 0)
	if want := 4.0 * nParams * (2 + 4*2); est.params != want {
		t.Errorf("params %v bytes, want %v", est.params, want)
	}
	if want := 4.0 * (inputs + 2*largest) * model.DefaultEvalBatch * 2; est.activations != want {
		t.Errorf("activations %v bytes, want %v (the eval batch dominates)", est.activations, want)
	}
	if got, want := estimateMemory(&mlp, 1000, 1, 0).activations, 4.0*2*(inputs+sum)*1000; got != want {
		t.Errorf("batch 1000: activations %v, want %v", got, want)
	}
	// A round's 50 updates held for aggregation, 8 bytes a parameter each.
	if got, want := estimateMemory(&mlp, 16, 2, 50).updates, 8.0*nParams*50; got != want {
		t.Errorf("50 updates held: %v bytes, want %v", got, want)
	}

	// A 1x8x8 image, stem stride 2 to 4x4x2 (patches 16*9*1 = 144, output
	// 32), one more stage down to 2x2x3 (patches 4*9*2 = 72, output 12), no
	// blocks.
	c := model.CNN{Input: [3]int{1, 8, 8}, Frames: 1, Channels: []int{2, 3}, StemStride: 2}
	var acts layerSizes
	cnnActivations(&c, &acts)
	if acts.sum != 260 || acts.largest != 144 {
		t.Errorf("cnn activations %+v, want sum 260, largest 144", acts)
	}
	// Two frames double everything; a block per stage adds two 3x3
	// convolutions at the stage's width: 2*16*(18+2) and 2*4*(27+3).
	c.Frames, c.Blocks = 2, 1
	acts = layerSizes{}
	cnnActivations(&c, &acts)
	if want := 2 * (260 + 2*16*(18+2) + 2*4*(27+3.0)); acts.sum != want || acts.largest != 2*16*18 {
		t.Errorf("cnn activations with blocks and frames %+v, want sum %v, largest %v", acts, want, 2*16*18)
	}
}

// writeNPZSet writes dir/train.npz and dir/test.npz: rows x 64 float32
// features of two modalities, with the given labels (cycled).
func writeNPZSet(t *testing.T, dir string, rows int, train, test []int64) {
	t.Helper()
	for _, f := range []struct {
		name   string
		labels []int64
	}{{"train.npz", train}, {"test.npz", test}} {
		feats := make([][]float32, rows)
		labels := make([]int64, rows)
		for i := range feats {
			feats[i] = make([]float32, 64)
			feats[i][i%64] = 1
			labels[i] = f.labels[i%len(f.labels)]
		}
		if err := npz.Write(filepath.Join(dir, f.name), map[string]any{
			"a.npy": feats, "b.npy": feats, "labels.npy": labels}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestLoadDataNPZBounds: data.npz_max_mb and the class-count inference
// reach the npz loader from the config, and its warnings reach the run's
// logger.
func TestLoadDataNPZBounds(t *testing.T) {
	tests := []struct {
		name        string
		rows        int
		train, test []int64
		maxMB       int
		want        string // substring of the error; "" : loads
		warn        string // substring of the log
	}{
		{"within the limit", 200, []int64{0, 1, 2}, []int64{0, 1, 2}, 1, "", ""},
		{"beyond the limit", 5000, []int64{0, 1, 2}, []int64{0, 1, 2}, 1, `train.npz: array "a": bad format: decompresses to`, ""},
		{"corrupt label", 200, []int64{0, 1, 2, 1000000}, []int64{0, 1}, 100, "train.npz: array \"labels\": bad label: row 3 has label 1000000", ""},
		{"test labels beyond training", 200, []int64{0, 1, 2}, []int64{0, 7}, 100, "", "test_max_label=7"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeNPZSet(t, dir, tc.rows, tc.train, tc.test)
			cfg := config.Default()
			cfg.Data.Source, cfg.Data.Dir, cfg.Data.Modalities, cfg.Data.NPZMaxMB = "npz", dir, []string{"a", "b"}, tc.maxMB
			var buf bytes.Buffer
			_, _, _, err := LoadData(context.Background(), &cfg, slog.New(slog.NewTextHandler(&buf, nil)))
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
			} else if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			if tc.warn != "" && !strings.Contains(buf.String(), tc.warn) {
				t.Errorf("log %q lacks %q", buf.String(), tc.warn)
			}
		})
	}
}

// TestValidationNeverReadsTest: a tuning run (data.validation) on npz
// data reads train.npz alone: without test.npz it loads, and its classes
// and validation set are those of the training file, whatever test.npz
// holds.
func TestValidationNeverReadsTest(t *testing.T) {
	dir := t.TempDir()
	writeNPZSet(t, dir, 60, []int64{0, 1, 2}, []int64{0, 1, 2, 6})
	cfg := config.Default()
	cfg.Data.Source, cfg.Data.Dir, cfg.Data.Modalities, cfg.Data.Validation = "npz", dir, []string{"a", "b"}, 0.2
	train, val, _, err := LoadData(context.Background(), &cfg, quiet)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "test.npz")); err != nil {
		t.Fatal(err)
	}
	train2, val2, _, err := LoadData(context.Background(), &cfg, quiet)
	if err != nil {
		t.Fatalf("without test.npz: %v", err)
	}
	if train.NumClasses != 3 || DataDigest(train, val) != DataDigest(train2, val2) {
		t.Errorf("classes %d, want 3; digests %s and %s, want equal", train.NumClasses, DataDigest(train, val), DataDigest(train2, val2))
	}
}

// TestClientCountOfTheData: the settings that depend on the number of
// clients are checked against the clients the data gave, not the clients
// field: with data.partition group over three groups, krum with f = 2
// (which needs more than 6 clients per round) is refused before any round,
// where it used to fall back to the median every round.
func TestClientCountOfTheData(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"train.npz", "test.npz"} {
		feats := make([][]float32, 60)
		labels, groups := make([]int64, 60), make([]int64, 60)
		for i := range feats {
			feats[i] = make([]float32, 8)
			feats[i][i%8] = 1
			labels[i], groups[i] = int64(i%3), int64(i%3)
		}
		if err := npz.Write(filepath.Join(dir, name), map[string]any{"a.npy": feats, "b.npy": feats, "labels.npy": labels, "groups.npy": groups}); err != nil {
			t.Fatal(err)
		}
	}
	cfg := config.Default()
	cfg.Data.Source, cfg.Data.Dir, cfg.Data.Modalities, cfg.Data.Partition = "npz", dir, []string{"a", "b"}, "group"
	cfg.Server.Aggregator, cfg.Server.KrumF = "krum", 2
	if err := cfg.Validate(); err != nil {
		t.Fatalf("with the default 20 clients the settings pass: %v", err)
	}
	cfg.OutDir, cfg.Rounds = t.TempDir(), 1
	_, err := Run(context.Background(), cfg, Options{Logger: quiet})
	var fe *config.FieldError
	if !errors.As(err, &fe) || fe.Path != "server.krum_f" || !strings.Contains(err.Error(), "the 3 clients the data gave") {
		t.Fatalf("krum f = 2 over three groups: %v, want refused naming server.krum_f and the 3 clients the data gave", err)
	}
	cfg.Server.KrumF = 0
	if _, err := Run(context.Background(), cfg, Options{Logger: quiet}); err != nil {
		t.Errorf("krum f = 0 over three groups: %v", err)
	}
}
