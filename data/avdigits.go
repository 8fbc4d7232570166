package data

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/fedcmi/fedcmi/vision"
)

// avDigitsStream is the PCG stream of the AV-digits pairing, so that the
// seed a caller uses elsewhere does not give correlated draws here.
const avDigitsStream = 0x6176646967697473 // "avdigits"

// fsddTestTakes is the number of takes per speaker and digit in FSDD's
// customary test set: takes 0 to 4.
const fsddTestTakes = 5

// speakerSplitPrefix starts a test split that holds out one speaker.
const speakerSplitPrefix = "speaker:"

// OpenAVDigits opens the audio-visual digits set: the recordings of the
// Free Spoken Digit Dataset, each paired with an MNIST image of the same
// digit, in the manner of AV-MNIST.
//
// fsddDir holds the recordings, {digit}_{speaker}_{take}.wav (or has them
// in a "recordings" sub-folder, as the FSDD repository does); mnistDir
// holds MNIST's four IDX files, gzip-compressed (train-images-idx3-ubyte.gz
// and so on) or not. Takes 0 to 4 of every speaker and digit are the test
// set, the rest the training set: 2700 and 300 clips for FSDD's 6
// speakers; with MediaOptions.TestSplit "speaker:NAME" the test set is all
// of that speaker's clips instead and the training set the other speakers'. Training clips are paired with MNIST training images and test
// clips with MNIST test images: for each digit, the images of that digit
// are shuffled with a generator seeded by seed and handed out in order, so
// no image is used twice and the same seed gives the same pairs. The
// clips are ordered by take, then speaker, then digit, so that any prefix
// (MediaOptions.Limit) holds every digit and speaker.
//
// The label is the digit (10 classes) and the group the speaker's index in
// the sorted list of speaker names (george 0, jackson 1, lucas 2, nicolas
// 3, theo 4, yweweler 5). The Sets have the modalities "audio", the
// spectrogram ([1, 64, 48] by default: 8 kHz, 1 s, the reference
// spectrogram pooled by 4 over frequency), and "visual", the image
// ([Channels, ImageSize, ImageSize], 1 x 28 x 28 by default); see
// [DefaultAVDigitsSpec]. A recording whose name does not follow the pattern
// is an error naming it.
func OpenAVDigits(fsddDir, mnistDir string, spec MediaSpec, seed uint64, opts *MediaOptions) (*Source, error) {
	sp, err := spec.resolve(DefaultAVDigitsSpec(), uses{audio: true, image: true})
	if err != nil {
		return nil, err
	}
	// "speaker:NAME" makes one speaker the test set (all takes) and the
	// others the training set: clients per speaker never see the test voice.
	heldSpeaker := ""
	if opts != nil && strings.HasPrefix(opts.TestSplit, speakerSplitPrefix) {
		heldSpeaker = strings.TrimPrefix(opts.TestSplit, speakerSplitPrefix)
		cp := *opts
		cp.TestSplit = ""
		opts = &cp
	}
	o, err := opts.resolve("avdigits", "", "", "test")
	if err != nil {
		return nil, fmt.Errorf("%w (or %sNAME to test on one speaker)", err, speakerSplitPrefix)
	}
	if heldSpeaker != "" {
		o.TestSplit = speakerSplitPrefix + heldSpeaker
	}
	dir := fsddDir
	if fi, err := os.Stat(filepath.Join(fsddDir, "recordings")); err == nil && fi.IsDir() {
		dir = filepath.Join(fsddDir, "recordings")
	}
	clips, err := listFSDD(dir)
	if err != nil {
		return nil, err
	}
	speakers := make([]string, len(clips))
	for i, c := range clips {
		speakers[i] = c.speaker
	}
	spIdx := sortedIndex(speakers)
	if _, ok := spIdx[heldSpeaker]; heldSpeaker != "" && !ok {
		names := slices.Sorted(maps.Keys(spIdx))
		return nil, fmt.Errorf("data: avdigits: test split %s%s: no such speaker in %s (speakers: %s)", speakerSplitPrefix, heldSpeaker, dir, strings.Join(names, ", "))
	}
	isTest := func(c fsddClip) bool {
		if heldSpeaker != "" {
			return c.speaker == heldSpeaker
		}
		return c.take < fsddTestTakes
	}

	var labelFiles, imageFiles [2]string
	for k, prefix := range [2]string{"train", "t10k"} {
		if labelFiles[k], err = findIDX(mnistDir, prefix+"-labels-idx1-ubyte"); err != nil {
			return nil, err
		}
		if imageFiles[k], err = findIDX(mnistDir, prefix+"-images-idx3-ubyte"); err != nil {
			return nil, err
		}
	}
	rng := rand.New(rand.NewPCG(seed, avDigitsStream))
	var splits [2]splitList
	for k, name := range [2]string{"train", "test"} {
		labels, err := readMNISTLabelsIDX(labelFiles[k])
		if err != nil {
			return nil, err
		}
		var pools [10][]int
		for i, y := range labels {
			pools[y] = append(pools[y], i)
		}
		for d := range pools {
			rng.Shuffle(len(pools[d]), func(i, j int) { pools[d][i], pools[d][j] = pools[d][j], pools[d][i] })
		}
		var used [10]int
		sl := splitList{name: name, file: dir}
		for _, c := range clips {
			if isTest(c) != (k == 1) {
				continue
			}
			if used[c.digit] == len(pools[c.digit]) {
				return nil, fmt.Errorf("data: avdigits: %w: the %s split has more recordings of digit %d than %s has images of it (%d)",
					ErrInfeasible, name, c.digit, labelFiles[k], len(pools[c.digit]))
			}
			sl.items = append(sl.items, item{
				id:         c.name,
				label:      c.digit,
				group:      spIdx[c.speaker],
				audio:      filepath.Join(dir, c.file),
				mnist:      pools[c.digit][used[c.digit]],
				mnistSplit: k,
			})
			used[c.digit]++
		}
		splits[k] = sl
	}
	mods := []modality{
		{name: "audio", kind: kindAudio, shape: sp.audioShape()},
		{name: "visual", kind: kindMNIST, shape: sp.imageShape()},
	}
	inputs := []string{dir, labelFiles[0], imageFiles[0], labelFiles[1], imageFiles[1]}
	src, err := newSource("avdigits", sp, o, mods, digitClasses(), true, splits, inputs)
	if err != nil {
		return nil, err
	}
	src.mnistFiles = imageFiles
	return src, nil
}

// LoadAVDigits opens the audio-visual digits with [OpenAVDigits] and
// decodes them with [Source.Load].
func LoadAVDigits(ctx context.Context, fsddDir, mnistDir string, spec MediaSpec, seed uint64, opts *MediaOptions) (train, test *Set, err error) {
	src, err := OpenAVDigits(fsddDir, mnistDir, spec, seed, opts)
	if err != nil {
		return nil, nil, err
	}
	return src.Load(ctx)
}

// digitClasses returns "0" to "9".
func digitClasses() []string {
	out := make([]string, 10)
	for d := range out {
		out[d] = strconv.Itoa(d)
	}
	return out
}

// fsddClip is one FSDD recording, parsed from its name.
type fsddClip struct {
	name    string // file name without its extension
	file    string // file name (the extension in any case)
	digit   int
	speaker string
	take    int
}

// listFSDD lists the recordings in dir, ordered by take, speaker and digit.
func listFSDD(dir string) ([]fsddClip, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("data: avdigits: FSDD recordings: %w", err)
	}
	var clips []fsddClip
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || strings.HasPrefix(name, ".") || !strings.EqualFold(filepath.Ext(name), ".wav") {
			continue
		}
		base := name[:len(name)-len(".wav")]
		parts := strings.Split(base, "_")
		bad := len(parts) != 3
		var c fsddClip
		if !bad {
			d, err1 := strconv.Atoi(parts[0])
			t, err2 := strconv.Atoi(parts[2])
			bad = err1 != nil || err2 != nil || len(parts[0]) != 1 || d < 0 || t < 0 || parts[1] == ""
			c = fsddClip{name: base, file: name, digit: d, speaker: parts[1], take: t}
		}
		if bad {
			return nil, &ParseError{File: filepath.Join(dir, name), Err: detail(ErrFormat,
				"an FSDD recording's name must be {digit}_{speaker}_{take}.wav, such as 3_theo_12.wav")}
		}
		clips = append(clips, c)
	}
	if len(clips) == 0 {
		return nil, fmt.Errorf("data: avdigits: %w: no .wav recordings in %s", ErrShape, dir)
	}
	slices.SortFunc(clips, func(a, b fsddClip) int {
		return cmp.Or(cmp.Compare(a.take, b.take), strings.Compare(a.speaker, b.speaker), cmp.Compare(a.digit, b.digit))
	})
	return clips, nil
}

// findIDX returns the path of the MNIST file base in dir, gzip-compressed
// (base.gz) or not.
func findIDX(dir, base string) (string, error) {
	for _, name := range []string{base + ".gz", base} {
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		} else if !errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("data: avdigits: %w", err)
		}
	}
	return "", fmt.Errorf("data: avdigits: MNIST file %s: %w (nor %s.gz)", filepath.Join(dir, base), fs.ErrNotExist, base)
}

// readMNISTLabelsIDX reads an MNIST label file and checks that every label
// is a digit.
func readMNISTLabelsIDX(path string) ([]int, error) {
	x, err := vision.ReadIDXFile(path)
	if err != nil {
		return nil, err
	}
	if x.Type != vision.IDXUint8 || len(x.Dims) != 1 {
		return nil, &ParseError{File: path, Err: detail(ErrFormat,
			"MNIST labels: want one dimension of unsigned bytes, got %v of %s", x.Dims, x.Type)}
	}
	labels := make([]int, len(x.Data))
	for i, b := range x.Data {
		if b > 9 {
			return nil, &ParseError{File: path, Err: detail(ErrLabel, "label %d of image %d is not a digit", b, i)}
		}
		labels[i] = int(b)
	}
	return labels, nil
}
