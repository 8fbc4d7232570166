package sim

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/fedcmi/fedcmi/config"
	"github.com/fedcmi/fedcmi/data"
	"github.com/fedcmi/fedcmi/fl"
	"github.com/fedcmi/fedcmi/metrics"
	"github.com/fedcmi/fedcmi/model"
	"github.com/fedcmi/fedcmi/rundir"
)

// small returns a quick experiment in a temporary directory.
func small(t *testing.T, method string) config.Config {
	c := config.Default()
	c.OutDir = t.TempDir()
	c.Method = method
	c.Rounds = 3
	c.Clients = 6
	c.ClientsPerRound = 4
	c.Train.Epochs = 1
	c.Data.Synthetic.TrainPerClass = 40
	c.Data.Synthetic.TestPerClass = 20
	c.Data.MinSize = 5
	return c
}

func TestRunWritesRunDirectory(t *testing.T) {
	for _, method := range []string{"fedavg", "fedprox", "fedcmi", "fedcmi-noinf", "fedcmi-notemp", "fedcmi-noprox"} {
		t.Run(method, func(t *testing.T) {
			cfg := small(t, method)
			var progress bytes.Buffer
			res, err := Run(context.Background(), cfg, Options{Logger: quiet, Progress: &progress})
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Rounds) != cfg.Rounds {
				t.Fatalf("%d rounds", len(res.Rounds))
			}
			for _, r := range res.Rounds {
				for h, acc := range r.Heads {
					if !(acc >= 0 && acc <= 1) {
						t.Fatalf("round %d head %s accuracy %v", r.Round, res.Schema.Heads[h], acc)
					}
				}
				if math.IsNaN(r.Dominance) || r.Clients != 4 {
					t.Fatalf("round %+v", r)
				}
			}
			for _, f := range []string{rundir.ConfigFile, rundir.MetricsCSV, rundir.MetricsJSONL, rundir.ModelFile, rundir.SummaryFile, "standardizer.json"} {
				if _, err := os.Stat(filepath.Join(res.Dir, f)); err != nil {
					t.Error(err)
				}
			}
			f, err := os.Open(filepath.Join(res.Dir, rundir.MetricsJSONL))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			_, rounds, err := metrics.ReadJSONL(f)
			if err != nil || len(rounds) != cfg.Rounds {
				t.Fatalf("metrics.jsonl: %d rounds, %v", len(rounds), err)
			}
			mf, err := os.Open(filepath.Join(res.Dir, rundir.ModelFile))
			if err != nil {
				t.Fatal(err)
			}
			defer mf.Close()
			arch := model.DefaultArch([]string{"audio", "visual"}, []int{32, 32}, 6)
			if _, _, err := model.ReadParams(mf, &arch); err != nil {
				t.Fatal(err)
			}
			// The same directory is not clobbered by a second run.
			if _, err := Run(context.Background(), cfg, Options{Logger: quiet}); !errors.Is(err, rundir.ErrExists) {
				t.Fatalf("second run: %v", err)
			}
		})
	}
}

// TestDeterminism: the same config and seed give identical metrics, also
// with clients trained in parallel; another seed gives other numbers.
func TestDeterminism(t *testing.T) {
	type outcome struct {
		rounds []metrics.Round
		model  []byte
	}
	run := func(seed uint64, parallel int) outcome {
		cfg := small(t, "fedcmi")
		cfg.Seed, cfg.Parallel = seed, parallel
		res, err := Run(context.Background(), cfg, Options{Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		m, err := os.ReadFile(filepath.Join(res.Dir, rundir.ModelFile))
		if err != nil {
			t.Fatal(err)
		}
		return outcome{res.Rounds, m}
	}
	a, b, c := run(7, 1), run(7, 2), run(8, 2)
	same := func(x, y outcome) bool {
		for i := range x.rounds {
			p, q := x.rounds[i], y.rounds[i]
			if p.TrainLoss != q.TrainLoss || p.Dominance != q.Dominance || p.FirstDominant != q.FirstDominant {
				return false
			}
			for h := range p.Heads {
				if p.Heads[h] != q.Heads[h] {
					return false
				}
			}
			for k := range p.PerClass {
				if p.PerClass[k] != q.PerClass[k] && !(math.IsNaN(p.PerClass[k]) && math.IsNaN(q.PerClass[k])) {
					return false
				}
			}
		}
		return bytes.Equal(x.model, y.model)
	}
	if !same(a, b) {
		t.Fatalf("same seed, different metrics or model:\n%+v\n%+v", a.rounds, b.rounds)
	}
	if same(a, c) {
		t.Fatal("different seeds, identical metrics")
	}
}

func TestInterruptKeepsCompletedRounds(t *testing.T) {
	cfg := small(t, "fedavg")
	cfg.Rounds = 50
	ctx, cancel := context.WithCancel(context.Background())
	var progress countingWriter
	progress.after, progress.cancel = 2, cancel
	res, err := Run(ctx, cfg, Options{Logger: quiet, Progress: &progress})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	if res == nil || len(res.Rounds) < 2 || len(res.Rounds) >= 50 {
		t.Fatalf("result %+v", res)
	}
	if _, err := os.Stat(filepath.Join(res.Dir, rundir.SummaryFile)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(res.Dir, rundir.ModelFile)); err != nil {
		t.Fatal(err)
	}
}

// countingWriter cancels after a number of progress lines (rounds).
type countingWriter struct {
	n, after int
	cancel   func()
}

func (w *countingWriter) Write(p []byte) (int, error) {
	w.n++
	if w.n == w.after {
		w.cancel()
	}
	return len(p), nil
}

func TestBadConfigFailsEarly(t *testing.T) {
	cfg := small(t, "fedcmi")
	cfg.Data.Source = "mfeat"
	cfg.Data.Dir = filepath.Join(t.TempDir(), "missing")
	cfg.Data.Modalities = []string{"fac", "zer"}
	if _, err := Run(context.Background(), cfg, Options{Logger: quiet}); err == nil {
		t.Fatal("missing data directory accepted")
	}
}

func BenchmarkRound(b *testing.B) {
	// One full simulated round of the default experiment (10 of 20 clients,
	// 2 local epochs) per iteration, evaluation included.
	cfg := config.Default()
	cfg.OutDir = b.TempDir()
	cfg.Overwrite = true
	cfg.Rounds = 1
	cfg.FedCMI.Warmup = 0 // infiltration from the first round
	for b.Loop() {
		if _, err := Run(context.Background(), cfg, Options{Logger: quiet}); err != nil {
			b.Fatal(err)
		}
	}
}

// TestThousandClients: registering 1000 clients costs their sample indices
// only (no model per client), and a round over 10 of them runs.
func TestThousandClients(t *testing.T) {
	cfg := small(t, "fedcmi")
	cfg.Clients, cfg.ClientsPerRound, cfg.Rounds = 1000, 10, 2
	cfg.Data.Partition, cfg.Data.MinSize = "iid", 1
	cfg.Data.Synthetic.TrainPerClass = 500 // 3000 samples, 3 per client
	train, _, _, err := LoadData(context.Background(), &cfg, quiet)
	if err != nil {
		t.Fatal(err)
	}
	parts, masks, err := Partition(&cfg, train)
	if err != nil {
		t.Fatal(err)
	}
	arch := model.DefaultArch([]string{"audio", "visual"}, []int{32, 32}, 6)
	b, err := model.NewBackend("", arch, 1)
	if err != nil {
		t.Fatal(err)
	}
	engine, err := model.NewEngine(b, arch, 16)
	if err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	clients := make([]*fl.LocalClient, len(parts))
	for i := range parts {
		if clients[i], err = fl.NewLocalClient(engine, train, parts[i], masks[i]); err != nil {
			t.Fatal(err)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	perClient := float64(after.TotalAlloc-before.TotalAlloc) / float64(len(clients))
	t.Logf("%d clients: %.0f bytes allocated each", len(clients), perClient)
	if perClient > 4096 {
		t.Fatalf("%.0f bytes per registered client: more than its sample indices", perClient)
	}
	res, err := Run(context.Background(), cfg, Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Rounds) != 2 || res.Rounds[1].Clients != 10 {
		t.Fatalf("rounds %+v", res.Rounds)
	}
	runtime.KeepAlive(clients)
}

var quiet = slog.New(slog.DiscardHandler)

// TestMfeat runs a short experiment on the real UCI Multiple Features data
// (fac strong, zer weak) when ../shared/data/mfeat is present.
func TestMfeat(t *testing.T) {
	dir := filepath.Join("..", "..", "shared", "data", "mfeat")
	if _, err := os.Stat(filepath.Join(dir, "mfeat-fac")); err != nil {
		t.Skipf("mfeat data not found at %s: %v", dir, err)
	}
	cfg := config.Default()
	if err := cfg.LoadFile(filepath.Join("..", "configs", "mfeat.yaml")); err != nil {
		t.Fatal(err)
	}
	cfg.Data.Dir = dir
	cfg.OutDir = t.TempDir()
	cfg.Rounds = 8
	res, err := Run(context.Background(), cfg, Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	last := res.Rounds[len(res.Rounds)-1]
	// Chance is 0.1; the strong view alone is far above it after 8 rounds.
	if last.Heads[0] < 0.6 || last.Heads[1] < 0.6 {
		t.Fatalf("fused %.3f, fac only %.3f after 8 rounds", last.Heads[0], last.Heads[1])
	}
	if res.Schema.Heads[1] != "fac_only" || res.Schema.Heads[2] != "zer_only" {
		t.Fatalf("heads %v", res.Schema.Heads)
	}
}

func TestPersonalizedRun(t *testing.T) {
	cfg := small(t, "fedcmi")
	cfg.FedCMI.Personalized = true
	res, err := Run(context.Background(), cfg, Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Rounds) != cfg.Rounds || math.IsNaN(res.Rounds[2].Heads[0]) {
		t.Fatalf("rounds %+v", res.Rounds)
	}
}

// TestDivergenceStops: a round in which every client diverges stops the run
// with an error that says so, and the summary is marked incomplete.
func TestDivergenceStops(t *testing.T) {
	cfg := small(t, "fedavg")
	cfg.Train.LR, cfg.Train.LRMin = config.MaxLR, 0
	res, err := Run(context.Background(), cfg, Options{Logger: quiet})
	if err == nil || !strings.Contains(err.Error(), "no usable result") || !strings.Contains(err.Error(), "diverged") {
		t.Fatalf("err = %v", err)
	}
	raw, rerr := os.ReadFile(filepath.Join(res.Dir, rundir.SummaryFile))
	if rerr != nil || !strings.Contains(string(raw), `"completed": false`) {
		t.Fatalf("summary %s, %v", raw, rerr)
	}
}

func TestArchFromShapes(t *testing.T) {
	set := &data.Set{
		Modalities: []string{"audio", "visual"}, Dims: []int{16, 24}, NumClasses: 3,
		Shapes: [][]int{{4, 4}, {2, 3, 2, 2}},
	}
	cfg := config.Default()
	cfg.Model.Encoders = []string{"cnn", "cnn"}
	arch, err := Arch(&cfg, set)
	if err != nil {
		t.Fatal(err)
	}
	if arch.CNN[0].Input != [3]int{1, 4, 4} || arch.CNN[0].Frames != 1 || arch.CNN[1].Input != [3]int{3, 2, 2} || arch.CNN[1].Frames != 2 {
		t.Fatalf("CNN inputs %+v", arch.CNN)
	}
	cfg.Model.Encoders = []string{"text", "mlp"}
	if arch, err = Arch(&cfg, set); err != nil || arch.Encoders[0] != model.EncoderMLP {
		t.Fatalf("text encoder: %v %v", arch.Encoders, err)
	}
	set.Shapes = nil // plain vectors cannot feed a CNN
	cfg.Model.Encoders = []string{"cnn", "mlp"}
	if _, err := Arch(&cfg, set); err == nil || !strings.Contains(err.Error(), "image-shaped") {
		t.Fatalf("vector data with a cnn encoder: %v", err)
	}
}

// TestAVDigits runs the audio-visual digits end to end (WAV -> spectrogram
// -> CNN, IDX image -> CNN) on a slice of the real data when
// ../shared/data/{fsdd,mnist} are present.
func TestAVDigits(t *testing.T) {
	shared := filepath.Join("..", "..", "shared", "data")
	for _, d := range []string{"fsdd", "mnist"} {
		if _, err := os.Stat(filepath.Join(shared, d)); err != nil {
			t.Skipf("%s not found under %s: %v", d, shared, err)
		}
	}
	cfg := config.Default()
	if err := cfg.LoadFile(filepath.Join("..", "configs", "avdigits.yaml")); err != nil {
		t.Fatal(err)
	}
	cfg.Data.Dir = filepath.Join(shared, "fsdd", "recordings")
	cfg.Data.ImagesDir = filepath.Join(shared, "mnist")
	cfg.Data.CacheDir = t.TempDir()
	cfg.Data.Limit = 180 // three takes of every speaker and digit
	cfg.OutDir = t.TempDir()
	cfg.Rounds = 2
	var first bytes.Buffer
	res, err := Run(context.Background(), cfg, Options{Logger: slog.New(slog.NewTextHandler(&first, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Rounds) != 2 || res.Rounds[1].Clients != 6 || !strings.Contains(first.String(), "decoded") {
		t.Fatalf("rounds %+v, log:\n%s", res.Rounds, first.String())
	}
	// A second run reads the cache (decodes nothing) and, with the same
	// seed, measures exactly the same.
	var logs bytes.Buffer
	cfg.Overwrite = true
	again, err := Run(context.Background(), cfg, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(logs.String(), "decoded") {
		t.Fatalf("second run decoded media again:\n%s", logs.String())
	}
	for h := range res.Rounds[1].Heads {
		if res.Rounds[1].Heads[h] != again.Rounds[1].Heads[h] {
			t.Fatalf("head %s: %v, then %v from the cache", res.Schema.Heads[h], res.Rounds[1].Heads[h], again.Rounds[1].Heads[h])
		}
	}
	entries, err := os.ReadDir(cfg.Data.CacheDir)
	if err != nil || len(entries) != 1 || !strings.HasPrefix(entries[0].Name(), "avdigits-") {
		t.Fatalf("cache folder: %v %v", entries, err)
	}

	// The summary names the cache folder, against which a sweep checks the
	// run: the same data are unchanged; a run that read another folder
	// (other split lists map to another) ran on other data, also once
	// that folder is gone; with the cache gone, the data are not checked.
	cache := filepath.Join(cfg.Data.CacheDir, entries[0].Name())
	if extra, err := readSummaryExtra(again.Dir); err != nil || extra.DataCache != cache {
		t.Fatalf("summary's data_cache %q (%v), want %s", extra.DataCache, err, cache)
	}
	check := func() string {
		why, err := NewDataCheck(context.Background(), quiet).Changed(again.Dir, cfg)
		if err != nil {
			t.Fatal(err)
		}
		return why
	}
	if why := check(); why != "" {
		t.Errorf("the same media: %s", why)
	}
	summary := filepath.Join(again.Dir, rundir.SummaryFile)
	b, err := os.ReadFile(summary)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(summary, bytes.Replace(b, []byte(entries[0].Name()), []byte("avdigits-other"), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	if why := check(); !strings.Contains(why, "avdigits-other") {
		t.Errorf("a run that read another cache folder: %q", why)
	}
	if err := os.WriteFile(summary, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(cache); err != nil {
		t.Fatal(err)
	}
	if why := check(); why != "" {
		t.Errorf("the cache gone: %q, want not checked", why)
	}
	if _, err := os.Stat(cache); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the check rebuilt the cache: %v", err)
	}
}

// TestDominanceVariants runs the FedCMI dominance variants end to end. With
// the federated table every client of a round uses the same direction, so
// the round's share of A->V rows is exactly 0 or 1 once the table exists
// (from round 2; infiltration starts after the one warm-up round).
func TestDominanceVariants(t *testing.T) {
	for _, method := range []string{"fedcmi", "fedcmi-teacher", "fedcmi-holdout", "fedcmi-fedstats", "fedcmi-fedstats-holdout"} {
		t.Run(method, func(t *testing.T) {
			cfg := small(t, method)
			cfg.Data.MultiRatio = 1
			cfg.Rounds, cfg.Train.Epochs, cfg.Train.LR = 4, 2, 0.05
			res, err := Run(context.Background(), cfg, Options{Logger: quiet})
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range res.Rounds {
				for h, acc := range r.Heads {
					if !(acc >= 0 && acc <= 1) {
						t.Fatalf("round %d head %s accuracy %v", r.Round, res.Schema.Heads[h], acc)
					}
				}
			}
			if fused := res.Rounds[len(res.Rounds)-1].Heads[0]; fused < 0.3 {
				t.Errorf("fused accuracy %v after %d rounds (chance 1/6)", fused, cfg.Rounds)
			}
			if strings.HasPrefix(method, "fedcmi-fedstats") {
				for _, r := range res.Rounds[2:] {
					if r.FirstDominant != 0 && r.FirstDominant != 1 {
						t.Errorf("round %d: share of A->V rows %v, want one direction for all clients", r.Round, r.FirstDominant)
					}
				}
			}
		})
	}
	cfg := small(t, "fedcmi-holdout")
	cfg.FedCMI.Holdout = 0
	if _, err := Run(context.Background(), cfg, Options{Logger: quiet}); err == nil || !strings.Contains(err.Error(), "fedcmi.holdout") {
		t.Errorf("holdout 0 with fedcmi-holdout: %v", err)
	}
}

// TestValidationSplit: with data.validation the evaluation set is a
// stratified slice of the training set, and the two parts add up to it.
func TestValidationSplit(t *testing.T) {
	cfg := small(t, "fedavg")
	full, test, _, err := LoadData(context.Background(), &cfg, quiet)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Data.Validation = 0.25
	train, val, _, err := LoadData(context.Background(), &cfg, quiet)
	if err != nil {
		t.Fatal(err)
	}
	// 40 training samples per class: 10 of each of the 6 classes held out.
	if val.Len() != 60 || train.Len() != full.Len()-60 || val.Len() == test.Len() {
		t.Fatalf("validation %d, train %d of %d (test %d)", val.Len(), train.Len(), full.Len(), test.Len())
	}
	perClass := make([]int, 6)
	for _, y := range val.Labels {
		perClass[y]++
	}
	if !slices.Equal(perClass, []int{10, 10, 10, 10, 10, 10}) {
		t.Errorf("validation labels per class %v", perClass)
	}
}

// TestFedAvgFusedIsFedAvgWithoutHeads checks that fedavg-fused is FedAvg
// with fedcmi.c1 = 0 (whatever c1 says), and that the heads' losses matter:
// plain fedavg at its default c1 trains a different model.
func TestFedAvgFusedIsFedAvgWithoutHeads(t *testing.T) {
	run := func(method string, c1 float64) []metrics.Round {
		cfg := small(t, method)
		cfg.FedCMI.C1 = c1
		res, err := Run(context.Background(), cfg, Options{Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		return res.Rounds
	}
	same := func(a, b []metrics.Round) bool {
		for i := range a {
			if a[i].TrainLoss != b[i].TrainLoss || !slices.Equal(a[i].Heads, b[i].Heads) {
				return false
			}
		}
		return len(a) == len(b)
	}
	fused := run("fedavg-fused", 2)
	if !same(fused, run("fedavg", 0)) {
		t.Error("fedavg-fused differs from fedavg with c1 0")
	}
	if same(fused, run("fedavg", 2)) {
		t.Error("fedavg-fused equals fedavg with c1 2: the self-head losses are not off")
	}
}

// TestGCPercent: small runs get GOGC=400, a large data set or a round of
// many large updates Go's default.
func TestGCPercent(t *testing.T) {
	small := &data.Set{Features: [][]float32{make([]float32, 1000), make([]float32, 1000)}}
	large := &data.Set{Features: [][]float32{make([]float32, GCSmallData/4), nil}}
	for _, tc := range []struct {
		name    string
		set     *data.Set
		updates int
		want    int
	}{
		{"small", small, 10 * 30000, 400},
		{"large data", large, 0, 100},
		{"many updates", small, 1000 * 30000, 100},
	} {
		if got, _ := gcPercent(tc.set, tc.updates); got != tc.want {
			t.Errorf("%s: GOGC %d, want %d", tc.name, got, tc.want)
		}
	}
}

// TestProgressHeads: the progress line shows the fused head and every
// single-modality head, whatever the number of modalities.
func TestProgressHeads(t *testing.T) {
	for _, tc := range []struct {
		mods []string
		want string
	}{
		{[]string{"a", "v"}, "fused 0.0000  a_only 0.0100  v_only 0.0200"},
		{[]string{"a", "v", "t"}, "fused 0.0000  a_only 0.0100  v_only 0.0200  t_only 0.0300"},
	} {
		names := model.HeadNames(tc.mods)
		acc := make([]float64, len(names))
		for h := range acc {
			acc[h] = float64(h) / 100
		}
		if got := ProgressHeads(names, acc); got != tc.want {
			t.Errorf("%v: %q, want %q", tc.mods, got, tc.want)
		}
	}
}

// TestOwnModels: a run whose clients keep parts of their own evaluates
// each such client's own model at its end (summary "own_models"); one
// whose clients keep none does not.
func TestOwnModels(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*config.Config)
		own  bool
	}{
		{"fedavg", func(c *config.Config) {}, false},
		{"fedcmi-personalized", func(c *config.Config) { c.Method, c.FedCMI.Personalized = "fedcmi", true }, true},
		{"harmony", func(c *config.Config) { c.Method, c.Harmony.UnimodalRounds = "harmony", 1 }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := small(t, "fedavg")
			tc.edit(&cfg)
			res, err := Run(context.Background(), cfg, Options{Logger: quiet})
			if err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(filepath.Join(res.Dir, rundir.SummaryFile))
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Contains(string(b), `"own_models"`); got != tc.own || (res.Own != nil) != tc.own {
				t.Fatalf("own models evaluated: summary %v, result %+v; want %v", got, res.Own, tc.own)
			}
			if !tc.own {
				return
			}
			if res.Own.Clients < 1 || res.Own.Clients > res.Own.Of || res.Own.Of > cfg.Clients {
				t.Errorf("own models of %d of %d clients", res.Own.Clients, res.Own.Of)
			}
			final := res.Rounds[len(res.Rounds)-1]
			fewer := false
			for k, h := range res.Schema.Heads {
				m, s, n := res.Own.Mean[h], res.Own.Std[h], res.Own.N[h]
				if !(m >= 0 && m <= 1 && s >= 0 && s <= 0.5 && n >= 1 && n <= res.Own.Clients) {
					t.Errorf("head %s: mean %v, std %v over %d clients", h, m, s, n)
				}
				fewer = fewer || n < res.Own.Clients
				// Personal branches are the infiltration projectors and
				// classifiers: the fused and self-only heads read none, so
				// every client's own model scores as the global one there.
				if tc.name == "fedcmi-personalized" && !strings.HasSuffix(h, "_both") && (math.Abs(m-final.Heads[k]) > 1e-12 || s > 1e-12) {
					t.Errorf("head %s reads no personal part, yet own models %v ± %v, global %v", h, m, s, final.Heads[k])
				}
			}
			// Unimodal clients keep personal branches too, but cannot
			// compute the other modality's head; Harmony's own models are
			// its multimodal clients'.
			if want := tc.name == "fedcmi-personalized"; fewer != want {
				t.Errorf("some head averaged over fewer clients: %v, want %v (%+v)", fewer, want, res.Own)
			}
		})
	}
}

// TestHarmonyNeedsMultimodalClients: a simulation of Harmony with a
// multi_ratio that leaves no multimodal client after partitioning is
// refused before any round runs, naming data.multi_ratio (it used to train
// its whole unimodal stage and then fail).
func TestHarmonyNeedsMultimodalClients(t *testing.T) {
	cfg := small(t, "harmony")
	cfg.Data.MultiRatio = 0.02
	_, err := Run(context.Background(), cfg, Options{Logger: quiet})
	var fe *config.FieldError
	if !errors.As(err, &fe) || fe.Path != "data.multi_ratio" {
		t.Fatalf("harmony without multimodal clients: %v, want refused naming data.multi_ratio", err)
	}
	if _, err := os.Stat(filepath.Join(cfg.OutDir, cfg.RunName())); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a run directory was made: %v", err)
	}
	// A deployment's clients are the participants that register, not
	// the coordinator's own partition of its data: Prepare, which serve
	// and join use, does not refuse it.
	if _, err := Prepare(context.Background(), &cfg, quiet); err != nil {
		t.Errorf("Prepare: %v", err)
	}
}
