package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/fedcmi/fedcmi/config"
	"github.com/fedcmi/fedcmi/data"
	"github.com/fedcmi/fedcmi/metrics"
	"github.com/fedcmi/fedcmi/model"
	"github.com/fedcmi/fedcmi/rundir"
	"github.com/fedcmi/fedcmi/sim"
)

func cmdEval() *Command {
	c := &Command{
		Name:      "eval",
		UsageLine: "eval -run DIR -data FILE.npz [-drop modality] [-model FILE] [-json]",
		Short:     "score a run's saved model on an npz set, any modality missing",
		Long: `Eval scores the global model a run saved (model.safetensors in its run
directory, read with the run's config.yaml and standardizer.json) on a
labelled .npz set in the format of data.source npz ("labels" and one N x D
array per modality; see Your own data in the README), and prints the
accuracy of every head the data allows:

  both modalities   fused F(a, v), <A>_only F(a, 0), <V>_only F(0, v),
                    <A>_both F(a, a->v), <V>_both F(v->a, v)
  only A            <A>_only and <A>_both (what a client holding A uses)
  only V            <V>_only and <V>_both

With three or more modalities: the fused head with all of them; <m>_only
and <m>_both of each modality present; and no_<m>, the fused head without
m, for a missing (or dropped) modality m when all the others are present.

A modality is missing when the file lacks its array or -drop names it
(to see how the model copes without it). Features are standardised with the
run's statistics, as in training. Labels must be classes of the model.
Runs with cnn encoders are not supported (npz sets hold feature vectors).`,
	}
	c.Run = func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
		f := newFlagSet(c)
		runDir := f.String("run", "", "the run `dir`ectory (config.yaml, model.safetensors, standardizer.json)")
		dataFile := f.String("data", "", "the labelled .npz `file` to score on")
		drop := f.String("drop", "", "modalities to leave out although the file holds them (comma-separated `list`)")
		modelFile := f.String("model", "", "the model `file` (default: <run>/model.safetensors)")
		asJSON := f.Bool("json", false, "print the result as JSON")
		if err := parse(f, args); err != nil {
			return err
		}
		switch {
		case f.NArg() > 0:
			return &usageError{fmt.Sprintf("unexpected argument %q", f.Arg(0))}
		case *runDir == "":
			return &usageError{"-run DIR is required (a run directory written by simulate or serve)"}
		case *dataFile == "":
			return &usageError{"-data FILE.npz is required"}
		}
		if *modelFile == "" {
			*modelFile = filepath.Join(*runDir, rundir.ModelFile)
		}
		var dropped []string
		if *drop != "" {
			for _, d := range strings.Split(*drop, ",") {
				dropped = append(dropped, strings.TrimSpace(d))
			}
		}
		res, err := evaluateRun(ctx, *runDir, *modelFile, *dataFile, dropped)
		if err != nil {
			var ue *usageError
			if errors.As(err, &ue) {
				return err
			}
			return fmt.Errorf("eval: %w", err)
		}
		if *asJSON {
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(res)
		}
		res.write(stdout)
		return nil
	}
	return c
}

// evalResult is what eval prints.
type evalResult struct {
	Data     string             `json:"data"`
	Samples  int                `json:"samples"`
	Present  []string           `json:"present"`
	Missing  []string           `json:"missing"`
	Accuracy map[string]float64 `json:"accuracy"`
	// Heads lists Accuracy's keys in the model's head order.
	Heads   []string `json:"heads"`
	Correct []int    `json:"correct"`
}

func (r *evalResult) write(w io.Writer) {
	fmt.Fprintf(w, "%s: %d samples; modalities present: %s", r.Data, r.Samples, strings.Join(r.Present, ", "))
	if len(r.Missing) > 0 {
		fmt.Fprintf(w, "; missing: %s", strings.Join(r.Missing, ", "))
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "head\taccuracy\tcorrect")
	for i, h := range r.Heads {
		fmt.Fprintf(tw, "%s\t%.4f\t%d/%d\n", h, r.Accuracy[h], r.Correct[i], r.Samples)
	}
	tw.Flush()
}

// evalChunk is how many rows eval predicts between checks of its context:
// a multiple of the engine's evaluation block, so that chunking adds no
// padded blocks.
const evalChunk = 16 * model.DefaultEvalBatch

// evaluateRun scores the model of runDir (read from modelFile) on the npz
// file, without the dropped modalities. It stops with ctx's error when ctx
// ends (Ctrl-C).
func evaluateRun(ctx context.Context, runDir, modelFile, dataFile string, dropped []string) (*evalResult, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	cfg := config.Default()
	if err := cfg.LoadFile(filepath.Join(runDir, rundir.ConfigFile)); err != nil {
		return nil, err
	}
	for m, enc := range cfg.Model.Encoders {
		if enc == model.EncoderCNN {
			return nil, fmt.Errorf("the run's modality %d has a cnn encoder, whose image shape an npz set does not carry; eval supports mlp and text encoders", m)
		}
	}
	buf, err := readModelFile(modelFile)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	mf, err := model.OpenModelFile(buf)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", modelFile, err)
	}
	arch, err := archOfModel(&cfg, mf)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", modelFile, err)
	}
	params, err := mf.Params(&arch)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", modelFile, err)
	}
	mods := arch.Modalities
	for _, d := range dropped {
		if !slices.Contains(mods, d) {
			return nil, &usageError{fmt.Sprintf("-drop %s: the model's modalities are %s", d, strings.Join(mods, ", "))}
		}
	}
	if err := checkRegular(dataFile); err != nil {
		return nil, err
	}
	// The run's own bound, as the simulation applies it (0 means the default).
	set, missing, err := data.ReadNPZLimit(dataFile, mods, int64(cfg.Data.NPZMaxMB)<<20)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var keep []string
	for _, m := range set.Modalities {
		if !slices.Contains(dropped, m) {
			keep = append(keep, m)
		}
	}
	if len(keep) == 0 {
		return nil, &usageError{"-drop leaves no modality to score on"}
	}
	if set, err = set.Select(keep...); err != nil {
		return nil, err
	}
	for i, y := range set.Labels {
		if y >= arch.NumClasses {
			return nil, fmt.Errorf("%s: labels row %d is %d, but the model has classes 0..%d", dataFile, i, y, arch.NumClasses-1)
		}
	}
	set.NumClasses = arch.NumClasses
	for m, name := range set.Modalities {
		k := slices.Index(mods, name)
		if set.Dims[m] != arch.InputDims[k] {
			return nil, fmt.Errorf("%s: modality %q has %d features per sample, the model takes %d", dataFile, name, set.Dims[m], arch.InputDims[k])
		}
	}
	if cfg.Data.Standardize {
		zf := filepath.Join(runDir, sim.StandardizerFile)
		err := checkRegular(zf)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%s is missing, but the run standardised its features (data.standardize)", zf)
		}
		if err != nil {
			return nil, err
		}
		zb, err := os.ReadFile(zf)
		if err != nil {
			return nil, err
		}
		var z data.Standardizer
		if err := json.Unmarshal(zb, &z); err != nil {
			return nil, fmt.Errorf("%s: %w", zf, err)
		}
		if set, err = z.Apply(set); err != nil {
			return nil, fmt.Errorf("%s: %w", zf, err)
		}
	}
	engine, err := sim.NewEngine(&cfg, arch, 1)
	if err != nil {
		return nil, err
	}
	nm := len(mods)
	x := make([][]float32, nm)
	has := make([]bool, nm)
	for m, name := range set.Modalities {
		k := slices.Index(mods, name)
		x[k], has[k] = set.Features[m], true
	}
	preds, err := predictHeads(ctx, engine, params, x, set.Len())
	if err != nil {
		return nil, err
	}
	heads := model.HeadsWith(has)
	names := model.HeadNames(mods)
	res := &evalResult{Data: dataFile, Samples: set.Len(), Present: set.Modalities, Accuracy: map[string]float64{}}
	for m, name := range mods {
		if !has[m] {
			res.Missing = append(res.Missing, name)
		}
	}
	_ = missing // every modality not present is listed, dropped or absent
	for _, h := range heads {
		acc, err := metrics.Accuracy(preds[h], set.Labels)
		if err != nil {
			return nil, err
		}
		correct := 0
		for i, p := range preds[h] {
			if p == set.Labels[i] {
				correct++
			}
		}
		res.Heads = append(res.Heads, names[h])
		res.Accuracy[names[h]] = acc
		res.Correct = append(res.Correct, correct)
	}
	return res, nil
}

// predictHeads returns every head's predicted classes for the n rows of x
// (as model.Engine.Predict takes them; a nil x[m] is an absent modality),
// predicting evalChunk rows at a time and checking ctx before each chunk,
// since Predict itself cannot be interrupted.
func predictHeads(ctx context.Context, engine *model.Engine, params model.Params, x [][]float32, n int) ([][]int, error) {
	arch := engine.Arch()
	dims := arch.InputDims
	preds := make([][]int, model.NumHeads(arch.NumModalities()))
	for lo := 0; lo < n; lo += evalChunk {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		hi := min(lo+evalChunk, n)
		xs := make([][]float32, len(x))
		for m := range x {
			if x[m] != nil {
				xs[m] = x[m][lo*dims[m] : hi*dims[m]]
			}
		}
		pred, err := engine.Predict(params, xs, hi-lo)
		if err != nil {
			return nil, err
		}
		for h := range pred.Preds {
			preds[h] = append(preds[h], pred.Preds[h]...)
		}
	}
	return preds, nil
}

// checkRegular refuses path unless it is a regular file (after symlinks),
// before it is opened: opening a FIFO blocks until a writer comes, and a
// device such as /dev/zero never ends.
func checkRegular(path string) error {
	info, err := os.Stat(path)
	if err != nil {
		return err
	}
	if !info.Mode().IsRegular() {
		return fmt.Errorf("%s: not a regular file (mode %v)", path, info.Mode().Type())
	}
	return nil
}

// readModelFile reads the model file at path, refusing anything but a
// regular file of at most model.MaxModelFile bytes before reading it.
func readModelFile(path string) ([]byte, error) {
	if err := checkRegular(path); err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// Stat the opened file: path may have been replaced since checkRegular.
	info, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !info.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file (mode %v)", path, info.Mode().Type())
	}
	if info.Size() > model.MaxModelFile {
		return nil, fmt.Errorf("%s: %d bytes, larger than a model file may be (%d bytes); is -model the run's model.safetensors?", path, info.Size(), model.MaxModelFile)
	}
	// The limit also holds if the file grows while it is read.
	buf, err := model.ReadModelBytes(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return buf, nil
}

// archOfModel returns the network of a run with mlp encoders: the layer
// widths from its config, the input widths and the number of classes from
// the shapes of the model file's first encoder layers and classifiers,
// and the modalities from the file's metadata (else the config's).
func archOfModel(cfg *config.Config, mf *model.ModelFile) (model.Arch, error) {
	meta := mf.Metadata()
	var mods []string
	if m := meta["modalities"]; m != "" {
		mods = strings.Split(m, ",")
	} else if len(cfg.Data.Modalities) >= 2 {
		mods = cfg.Data.Modalities
	} else {
		mods = cfg.Data.Synthetic.Modalities
	}
	if len(mods) < 2 {
		return model.Arch{}, fmt.Errorf("cannot tell the model's modalities (metadata %q)", meta["modalities"])
	}
	shape := func(name string) ([]int, error) {
		s, ok := mf.Shape(name)
		if !ok || len(s) != 2 {
			return nil, fmt.Errorf("no 2-D tensor %q: not a model of this run's architecture", name)
		}
		return s, nil
	}
	arch := model.Arch{
		Modalities: mods, InputDims: make([]int, len(mods)),
		Hidden: cfg.Model.Hidden, EmbedDim: cfg.Model.EmbedDim,
		Projector: cfg.Model.Projector, Fusion: cfg.Model.Fusion,
	}
	for m, name := range mods {
		s, err := shape(name + "/encoder/0/weights")
		if err != nil {
			return model.Arch{}, err
		}
		arch.InputDims[m] = s[0]
	}
	s, err := shape(mods[0] + "/classifier/weights")
	if err != nil {
		return model.Arch{}, err
	}
	arch.NumClasses = s[1]
	if err := arch.Validate(); err != nil {
		return model.Arch{}, err
	}
	return arch, nil
}
