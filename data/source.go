package data

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io/fs"
	"log"
	"math"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
)

// Defaults of MediaOptions.
const (
	defaultWorkers   = 2
	defaultShardSize = 256
	// maxShardSize bounds a shard's samples (and keeps a corrupt
	// manifest's shard count from overflowing).
	maxShardSize = 1 << 20
	// maxReported is how many missing or broken samples an error or a log
	// line names before it only counts the rest.
	maxReported = 3
)

// MediaOptions are the settings of the media loaders besides the
// [MediaSpec]: where the media lie under the data set's root, which list
// is the test split, and how decoding runs. A nil *MediaOptions, like the
// zero value, gives the defaults listed with each field.
type MediaOptions struct {
	// AudioDir is the folder of WAV files under the root of CREMA-D and
	// AVE, one <clip>.wav or <videoID>.wav per sample. Default "AudioWAV",
	// the folder of CREMA-D as distributed.
	AudioDir string

	// FramesDir is the folder under the root that holds one sub-folder of
	// extracted frames per clip (<FramesDir>/<clip>/*.jpg). Default
	// "Image-01-FPS" for CREMA-D and "Image-01-FPS-SE" for AVE, the names
	// the FedCMI/OGM-GE preprocessing gives its one-frame-per-second
	// folders (the AVE ones extracted from the event window only).
	FramesDir string

	// TestSplit chooses the list that becomes the test set where a data set
	// ships more than one held-out list: "test" (the default) or "val" for
	// AVE (valSet.txt instead of testSet.txt), "test" or "dev" for
	// CrisisMMD. CREMA-D and AV digits accept only "test".
	TestSplit string

	// LabelColumn is the CrisisMMD TSV column holding the label. Default
	// "label" when the files have it, else "label_text".
	LabelColumn string

	// Limit, when positive, keeps only the first Limit samples of each
	// split list, for quick trials. The AV-digits lists are ordered take by
	// take, so that any prefix mixes all digits and speakers.
	Limit int

	// Workers is the number of goroutines that decode media. Default 2.
	// The order of the samples never depends on it.
	Workers int

	// SkipBroken leaves out the samples whose media are missing or fail to
	// decode, and reports how many (and the first few reasons) through
	// Logf. By default such a sample is an error that names it: a split
	// list that names files the data set folder does not hold usually
	// means a wrong path. (The reference code skips such samples silently;
	// a few CREMA-D clips are known to be damaged in some copies.)
	SkipBroken bool

	// ShardSize is the number of samples in each file of a cache written
	// by [Prepare]. Default 256, at most 1048576. A cache keeps the shard
	// size it was begun with, whatever later calls set.
	ShardSize int

	// Logf receives reports of skipped samples and of cache preparation.
	// Default log.Printf.
	Logf func(format string, args ...any)
}

// resolve returns a copy of o (nil allowed) with the defaults filled in and
// checks it. testSplits lists the allowed TestSplit values, the first being
// the default.
func (o *MediaOptions) resolve(name, audioDir, framesDir string, testSplits ...string) (MediaOptions, error) {
	var r MediaOptions
	if o != nil {
		r = *o
	}
	if r.AudioDir == "" {
		r.AudioDir = audioDir
	}
	if r.FramesDir == "" {
		r.FramesDir = framesDir
	}
	if r.TestSplit == "" {
		r.TestSplit = testSplits[0]
	}
	ok := false
	for _, s := range testSplits {
		ok = ok || r.TestSplit == s
	}
	if !ok {
		return r, fmt.Errorf("data: %s: test split %q, want one of %s", name, r.TestSplit, strings.Join(testSplits, ", "))
	}
	if r.Workers == 0 {
		r.Workers = defaultWorkers
	}
	if r.ShardSize == 0 {
		r.ShardSize = defaultShardSize
	}
	if r.Logf == nil {
		r.Logf = log.Printf
	}
	switch {
	case r.Limit < 0:
		return r, fmt.Errorf("data: %s: limit %d, want >= 0", name, r.Limit)
	case r.Workers < 0:
		return r, fmt.Errorf("data: %s: workers %d, want >= 1 (0 for %d)", name, r.Workers, defaultWorkers)
	case r.ShardSize < 0 || r.ShardSize > maxShardSize:
		return r, fmt.Errorf("data: %s: shard size %d, want 1 to %d (0 for %d)", name, r.ShardSize, maxShardSize, defaultShardSize)
	}
	return r, nil
}

// kind is how a modality's features are made.
type kind int

const (
	kindAudio  kind = iota // WAV -> mono -> resample -> fit -> pooled spectrogram
	kindFrames             // frame folder -> k frames -> eval transform
	kindImage              // image file -> eval transform
	kindMNIST              // MNIST image by index -> eval transform
	kindText               // text -> hashed bag
)

// modality is one modality of a Source.
type modality struct {
	name  string
	kind  kind
	shape []int // nil for a plain vector
	dim   int
}

// item is one sample of a split list: its label and owner, and the media to
// decode. Only the fields of the source's modality kinds are used.
type item struct {
	id         string  // clip name, video id, image id: names the sample in messages
	label      int     // class index
	group      int     // natural owner, if the source has groups
	audio      string  // WAV file
	start, end float64 // AVE event window in seconds; end == 0: none
	frames     string  // frame folder
	image      string  // image file
	text       string  // text to featurise
	mnist      int     // index of the MNIST image in split mnistSplit
	mnistSplit int     // 0: MNIST training file, 1: test file
}

// splitList is the sample list of one split.
type splitList struct {
	name  string // "train" or "test"
	file  string // the list it was read from, for messages
	items []item
}

// Source is a media data set ready to be decoded: its effective
// [MediaSpec], its modalities and their sample shapes, and the samples of
// its training and test splits as the split lists name them. Opening a
// source (OpenCremaD, OpenAVE, OpenCrisisMMD, OpenAVDigits) reads only the
// lists (and, for AV digits, the recordings' names and MNIST's labels);
// [Source.Load] decodes the media, and [Prepare] decodes them once
// into a cache and reads them from there afterwards. A Source is immutable
// and may be used by several goroutines.
type Source struct {
	name       string
	spec       MediaSpec
	opts       MediaOptions
	mods       []modality
	classes    []string
	hasGroups  bool
	splits     [2]splitList
	inputs     []string  // data set folders and list files, for the manifest
	mnistFiles [2]string // AV digits: MNIST image files (train, test)
}

// Name returns the data set's name: "cremad", "ave", "crisismmd" or
// "avdigits".
func (s *Source) Name() string { return s.name }

// Spec returns the effective spec: the one given, with the data set's
// defaults in its zero fields and its unused fields zero.
func (s *Source) Spec() MediaSpec { return s.spec }

// Modalities returns the modality names, in the order of the Sets' features.
func (s *Source) Modalities() []string {
	out := make([]string, len(s.mods))
	for m, md := range s.mods {
		out[m] = md.name
	}
	return out
}

// Shapes returns the sample shape of each modality, as the Sets' Shapes
// (nil for a plain vector).
func (s *Source) Shapes() [][]int {
	out := make([][]int, len(s.mods))
	for m, md := range s.mods {
		out[m] = cloneInts(md.shape)
	}
	return out
}

// Classes returns the class names; label k of the Sets is Classes()[k].
func (s *Source) Classes() []string { return append([]string(nil), s.classes...) }

// Len returns the number of samples that the training and test lists name
// (after Limit), before any are skipped as broken.
func (s *Source) Len() (train, test int) {
	return len(s.splits[0].items), len(s.splits[1].items)
}

// Load decodes and preprocesses the media of both splits and returns them
// as Sets with the source's modalities, shapes and groups. Decoding runs on
// MediaOptions.Workers goroutines; the samples keep the order of the split
// lists. Missing media are reported before anything is decoded, naming the
// first few files; a file that fails to decode is reported with the error
// of the audio, vision or text package, which names the file and the
// problem. With SkipBroken, such samples are left out and counted in the
// log instead. Load stops early, with ctx's error, when ctx is done.
func (s *Source) Load(ctx context.Context) (train, test *Set, err error) {
	var pre [2][]error
	for k := range s.splits {
		if pre[k], err = s.checkMedia(&s.splits[k], s.splits[k].items); err != nil {
			return nil, nil, err
		}
	}
	sh := &shared{src: s}
	var sets [2]*Set
	for k := range s.splits {
		sp := &s.splits[k]
		blk, fails, err := s.decode(ctx, sp, sp.items, pre[k], sh)
		if err != nil {
			return nil, nil, err
		}
		s.logSkipped(sp, len(sp.items), fails)
		// The block becomes the Set without a copy: a split of CREMA-D at
		// full resolution takes gigabytes.
		b := &builder{src: s, feats: blk.feats, labels: blk.labels, groups: blk.groups, skipped: len(blk.skipped)}
		if sets[k], err = b.set(sp); err != nil {
			return nil, nil, err
		}
	}
	return sets[0], sets[1], nil
}

// failure is a sample that could not be used.
type failure struct {
	id  string
	err error
}

// checkMedia looks for the media files of items without reading them. It
// returns, per item, the error of a missing or inaccessible file (nil for
// the others) when SkipBroken is set, and otherwise an error naming the
// first few missing files; if the media of none of the split's items are
// found (items is the whole split), an error saying so even with
// SkipBroken.
func (s *Source) checkMedia(sp *splitList, items []item) ([]error, error) {
	pre := make([]error, len(items))
	var missing []int
	for i := range items {
		if err := s.statMedia(&items[i]); err != nil {
			pre[i] = err
			missing = append(missing, i)
		}
	}
	if len(missing) == 0 || s.opts.SkipBroken && len(missing) < len(sp.items) {
		return pre, nil
	}
	if s.opts.SkipBroken {
		// Not broken samples but a wrong folder: skipping would leave out
		// everything (and a cache would record it).
		return nil, fmt.Errorf("data: %s: %s split (%s): the media of none of its %d samples were found (is data.dir right?); first: %w",
			s.name, sp.name, sp.file, len(items), pre[missing[0]])
	}
	names := make([]string, 0, maxReported)
	for _, i := range missing[:min(len(missing), maxReported)] {
		names = append(names, items[i].id)
	}
	more := ""
	if len(missing) > maxReported {
		more = fmt.Sprintf(" and %d more", len(missing)-maxReported)
	}
	return nil, fmt.Errorf("data: %s: %s split (%s): %d of %d samples have missing media (%s%s; set data.skip_broken (Options.SkipBroken) to leave them out); first: %w",
		s.name, sp.name, sp.file, len(missing), len(items), strings.Join(names, ", "), more, pre[missing[0]])
}

// statMedia checks that the files an item needs exist: the WAV file, the
// frame folder (a folder), the image file.
func (s *Source) statMedia(it *item) error {
	check := func(path, what string, dir bool) error {
		if path == "" {
			return nil
		}
		fi, err := os.Stat(path)
		if err != nil {
			var pe *fs.PathError
			if errors.As(err, &pe) {
				return fmt.Errorf("%s %s: %w", what, path, pe.Err)
			}
			return fmt.Errorf("%s %s: %w", what, path, err)
		}
		if fi.IsDir() != dir {
			if dir {
				return fmt.Errorf("%s %s: %w (not a folder)", what, path, fs.ErrNotExist)
			}
			return fmt.Errorf("%s %s: %w (a folder, not a file)", what, path, fs.ErrNotExist)
		}
		if !dir && !fi.Mode().IsRegular() {
			// Opening a named pipe blocks until a writer comes, and a
			// device may never end.
			return fmt.Errorf("%s %s: %w (a named pipe, device or socket, not a regular file)", what, path, fs.ErrNotExist)
		}
		return nil
	}
	for _, md := range s.mods {
		var err error
		switch md.kind {
		case kindAudio:
			err = check(it.audio, "audio file", false)
		case kindFrames:
			err = check(it.frames, "frames folder", true)
		case kindImage:
			err = check(it.image, "image file", false)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// block is a run of decoded samples.
type block struct {
	feats   [][]float32 // per modality, len(labels) rows
	labels  []int
	groups  []int    // nil when the source has no groups
	skipped []string // ids of the samples left out as broken
}

// decode decodes items on the source's worker pool. pre holds per item an
// error found beforehand (nil to decode it); with SkipBroken, failing items
// are left out of the block and returned as failures, and otherwise the
// first failure in list order is the error.
func (s *Source) decode(ctx context.Context, sp *splitList, items []item, pre []error, sh *shared) (*block, []failure, error) {
	n := len(items)
	errs := make([]error, n)
	copy(errs, pre)
	feats := make([][]float32, len(s.mods))
	for m, md := range s.mods {
		feats[m] = make([]float32, n*md.dim)
	}
	todo := false
	for i := range errs {
		todo = todo || errs[i] == nil
	}
	if todo {
		sh.open()
		workers := min(s.opts.Workers, n)
		ws := make([]*worker, workers)
		for w := range ws {
			var err error
			if ws[w], err = newWorker(s, sh); err != nil {
				return nil, nil, err
			}
		}
		var next atomic.Int64
		var stop atomic.Bool
		var wg sync.WaitGroup
		for _, w := range ws {
			wg.Go(func() {
				rows := make([][]float32, len(s.mods))
				for !stop.Load() && ctx.Err() == nil {
					i := int(next.Add(1) - 1)
					if i >= n {
						return
					}
					if errs[i] != nil {
						continue
					}
					for m, md := range s.mods {
						rows[m] = feats[m][i*md.dim : (i+1)*md.dim]
					}
					if err := w.decode(&items[i], rows); err != nil {
						errs[i] = err
						// Items are handed out in order, so every item before
						// this one has been or is being decoded: stopping here
						// still finds the first failure in list order.
						if !s.opts.SkipBroken {
							stop.Store(true)
						}
					}
				}
			})
		}
		wg.Wait()
		if err := ctx.Err(); err != nil {
			return nil, nil, fmt.Errorf("data: %s: %s split: %w", s.name, sp.name, err)
		}
	}
	var fails []failure
	for i, err := range errs {
		if err == nil {
			continue
		}
		if !s.opts.SkipBroken {
			return nil, nil, fmt.Errorf("data: %s: %s split (%s): sample %q: %w", s.name, sp.name, sp.file, items[i].id, err)
		}
		fails = append(fails, failure{id: items[i].id, err: err})
	}
	blk := &block{feats: feats, labels: make([]int, 0, n)}
	if s.hasGroups {
		blk.groups = make([]int, 0, n)
	}
	kept := 0
	for i := range items {
		if errs[i] != nil {
			blk.skipped = append(blk.skipped, items[i].id)
			continue
		}
		if kept != i {
			for m, md := range s.mods {
				copy(feats[m][kept*md.dim:(kept+1)*md.dim], feats[m][i*md.dim:(i+1)*md.dim])
			}
		}
		blk.labels = append(blk.labels, items[i].label)
		if s.hasGroups {
			blk.groups = append(blk.groups, items[i].group)
		}
		kept++
	}
	for m, md := range s.mods {
		feats[m] = feats[m][:kept*md.dim]
	}
	return blk, fails, nil
}

// logSkipped reports the samples left out of a split, naming the first few
// with their reasons.
func (s *Source) logSkipped(sp *splitList, total int, fails []failure) {
	if len(fails) == 0 {
		return
	}
	var b strings.Builder
	for j, f := range fails[:min(len(fails), maxReported)] {
		if j > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%s: %v", f.id, f.err)
	}
	if len(fails) > maxReported {
		fmt.Fprintf(&b, "; and %d more", len(fails)-maxReported)
	}
	s.opts.Logf("data: %s: %s split: left out %d of %d samples with missing or broken media (data.skip_broken): %s",
		s.name, sp.name, len(fails), total, b.String())
}

// builder concatenates blocks into a Set.
type builder struct {
	src     *Source
	feats   [][]float32
	labels  []int
	groups  []int
	skipped int
}

// newBuilder returns a builder with room for n samples.
func (s *Source) newBuilder(n int) *builder {
	b := &builder{src: s, feats: make([][]float32, len(s.mods)), labels: make([]int, 0, n)}
	for m, md := range s.mods {
		b.feats[m] = make([]float32, 0, n*md.dim)
	}
	if s.hasGroups {
		b.groups = make([]int, 0, n)
	}
	return b
}

// add appends a block.
func (b *builder) add(blk *block) {
	for m := range b.feats {
		b.feats[m] = append(b.feats[m], blk.feats[m]...)
	}
	b.labels = append(b.labels, blk.labels...)
	if b.groups != nil {
		b.groups = append(b.groups, blk.groups...)
	}
	b.skipped += len(blk.skipped)
}

// set returns the Set of the blocks added, validated. A split without a
// single sample is an error.
func (b *builder) set(sp *splitList) (*Set, error) {
	s := b.src
	if len(b.labels) == 0 {
		return nil, fmt.Errorf("data: %s: %s split (%s): %w: no samples left (all %d left out as broken)",
			s.name, sp.name, sp.file, ErrShape, b.skipped)
	}
	set := &Set{
		Modalities: s.Modalities(),
		Dims:       make([]int, len(s.mods)),
		Features:   b.feats,
		Labels:     b.labels,
		Groups:     b.groups,
		NumClasses: len(s.classes),
		Shapes:     s.Shapes(),
	}
	for m, md := range s.mods {
		set.Dims[m] = md.dim
	}
	if err := set.Validate(); err != nil {
		return nil, fmt.Errorf("data: %s: %s split: %w", s.name, sp.name, err)
	}
	return set, nil
}

// newSource builds a Source from its parts, applying Limit and computing
// the modality dimensions. An empty split list is an error naming it.
func newSource(name string, spec MediaSpec, opts MediaOptions, mods []modality, classes []string, hasGroups bool, splits [2]splitList, inputs []string) (*Source, error) {
	for m := range mods {
		mods[m].dim = 1
		for _, d := range mods[m].shape {
			mods[m].dim *= d
		}
		if mods[m].shape == nil {
			mods[m].dim = spec.TextDim
		}
	}
	for k := range splits {
		if opts.Limit > 0 && len(splits[k].items) > opts.Limit {
			splits[k].items = splits[k].items[:opts.Limit:opts.Limit]
		}
		if len(splits[k].items) == 0 {
			return nil, &ParseError{File: splits[k].file, Err: detail(ErrShape, "the %s split list names no samples", splits[k].name)}
		}
	}
	abs := make([]string, len(inputs))
	for i, p := range inputs {
		abs[i] = absPath(p)
	}
	return &Source{name: name, spec: spec, opts: opts, mods: mods, classes: classes,
		hasGroups: hasGroups, splits: splits, inputs: abs}, nil
}

// SamplesKey identifies the samples the source holds ("sha256:" + hex):
// what changes it (split lists, media folder names, Limit, the AV-digits
// pairing) also makes Prepare refuse a cache. Together with the spec's Key
// it names a cache folder that is always the right one.
func (s *Source) SamplesKey() string { return s.fingerprint() }

// fingerprint returns a hash of what the source's samples are, independent
// of where the data set lies: the media folders' names under the root, and
// per split each sample's id, label, group, event window, MNIST pairing and
// text. A cache whose fingerprint differs was built from other split
// lists, other media folders, another Limit or another pairing.
func (s *Source) fingerprint() string {
	h := sha256.New()
	str := func(v string) {
		writeUint(h, uint64(len(v)))
		h.Write([]byte(v))
	}
	str(s.name)
	str(s.opts.AudioDir)
	str(s.opts.FramesDir)
	for _, c := range s.classes {
		str(c)
	}
	for k := range s.splits {
		sp := &s.splits[k]
		str(sp.name)
		writeUint(h, uint64(len(sp.items)))
		for i := range sp.items {
			it := &sp.items[i]
			str(it.id)
			str(it.text)
			writeUint(h, uint64(it.label))
			writeUint(h, uint64(it.group))
			writeUint(h, math.Float64bits(it.start))
			writeUint(h, math.Float64bits(it.end))
			writeUint(h, uint64(it.mnist))
			writeUint(h, uint64(it.mnistSplit))
		}
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// writeUint writes v to h as 8 little-endian bytes.
func writeUint(h hash.Hash, v uint64) {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], v)
	h.Write(b[:])
}

// indexOf returns the position of v in list, or -1.
func indexOf(list []string, v string) int {
	for i, x := range list {
		if x == v {
			return i
		}
	}
	return -1
}

// cloneInts returns a copy of x, nil for nil.
func cloneInts(x []int) []int {
	if x == nil {
		return nil
	}
	return append([]int(nil), x...)
}

// sortedIndex maps each distinct value of vals to its rank in sorted order.
func sortedIndex[T cmp.Ordered](vals []T) map[T]int {
	set := make(map[T]bool, len(vals))
	for _, v := range vals {
		set[v] = true
	}
	keys := make([]T, 0, len(set))
	for v := range set {
		keys = append(keys, v)
	}
	slices.Sort(keys)
	idx := make(map[T]int, len(keys))
	for i, v := range keys {
		idx[v] = i
	}
	return idx
}
