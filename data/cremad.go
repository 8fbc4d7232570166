package data

import (
	"context"
	"math"
	"path/filepath"
	"strconv"
	"strings"
)

// cremaDClasses are CREMA-D's emotions in the class order of the FedCMI and
// OGM-GE reference code.
var cremaDClasses = []string{"NEU", "HAP", "SAD", "FEA", "DIS", "ANG"}

// CremaDClasses returns CREMA-D's six emotion codes in class order: NEU
// (neutral), HAP (happy), SAD, FEA (fear), DIS (disgust), ANG (anger), the
// order of the reference code's class_dict.
func CremaDClasses() []string { return append([]string(nil), cremaDClasses...) }

// OpenCremaD opens CREMA-D as distributed, with frames extracted
// beforehand:
//
//	root/AudioWAV/<clip>.wav          (MediaOptions.AudioDir)
//	root/Image-01-FPS/<clip>/*.jpg    (MediaOptions.FramesDir, e.g. VideoFlash frames)
//	splitDir/train.csv, splitDir/test.csv
//
// splitDir defaults to root; the FedCMI authors' split (6698 training and
// 744 test clips) is in the project's shared data, splits/cremad. Each
// line of a list is "clipname,EMOTION", for example
// "1001_DFA_ANG_XX,ANG". Clip names have the form
// ActorID_Sentence_EMOTION_Level; the label is the file name's EMOTION,
// which must be one of [CremaDClasses] and agree with the list's second
// column. The group of a clip is its actor ID (1001 to 1091), so
// [ByGroup] makes one client per speaker.
//
// The Sets have the modalities "audio", the spectrogram of shape
// [1, F, T] (1 x 257 x 299 by default), and "visual", the frames of shape
// [Frames, Channels, ImageSize, ImageSize] (1 x 3 x 64 x 64 by default);
// see [MediaSpec] and [DefaultCremaDSpec]. Lists that cannot be parsed give
// a *ParseError naming the file and line (ErrFormat, or ErrLabel for an
// emotion outside the class list); an empty list gives ErrShape.
func OpenCremaD(root, splitDir string, spec MediaSpec, opts *MediaOptions) (*Source, error) {
	sp, err := spec.resolve(DefaultCremaDSpec(), uses{audio: true, frames: true, image: true})
	if err != nil {
		return nil, err
	}
	o, err := opts.resolve("cremad", "AudioWAV", "Image-01-FPS", "test")
	if err != nil {
		return nil, err
	}
	if splitDir == "" {
		splitDir = root
	}
	listFile := func(split string) string { return filepath.Join(splitDir, split+".csv") }
	return openClips("cremad", root, sp, o, listFile, readCremaDList, cremaDClasses, true)
}

// LoadCremaD opens CREMA-D with [OpenCremaD] and decodes it with
// [Source.Load].
func LoadCremaD(ctx context.Context, root, splitDir string, spec MediaSpec, opts *MediaOptions) (train, test *Set, err error) {
	src, err := OpenCremaD(root, splitDir, spec, opts)
	if err != nil {
		return nil, nil, err
	}
	return src.Load(ctx)
}

// readCremaDList parses one CREMA-D split list.
func readCremaDList(file, root string, o MediaOptions) ([]item, error) {
	lines, err := readList(file)
	if err != nil {
		return nil, err
	}
	items := make([]item, 0, len(lines))
	for _, ln := range lines {
		fail := func(col int, err error) error {
			return &ParseError{File: file, Line: ln.no, Column: col, Err: err}
		}
		fields := strings.Split(ln.text, ",")
		if len(fields) != 2 {
			return nil, fail(0, detail(ErrFormat, "want clipname,EMOTION, got %q", ln.text))
		}
		clip, emo := strings.TrimSpace(fields[0]), strings.TrimSpace(fields[1])
		if err := checkName(clip); err != nil {
			return nil, fail(1, err)
		}
		parts := strings.Split(clip, "_")
		if len(parts) != 4 {
			return nil, fail(1, detail(ErrFormat, "clip name %q is not ActorID_Sentence_EMOTION_Level", clip))
		}
		actor, err := strconv.Atoi(parts[0])
		if err != nil || actor < 0 || actor > math.MaxInt32 {
			return nil, fail(1, detail(ErrFormat, "clip name %q: actor ID %q is not a number from 0 to %d", clip, parts[0], math.MaxInt32))
		}
		label := indexOf(cremaDClasses, parts[2])
		if label < 0 {
			return nil, fail(1, detail(ErrLabel, "clip %q: emotion %q is not one of %s", clip, parts[2], strings.Join(cremaDClasses, " ")))
		}
		if emo != parts[2] {
			return nil, fail(2, detail(ErrLabel, "clip %q: the list says %q, the file name %q", clip, emo, parts[2]))
		}
		items = append(items, item{
			id:     clip,
			label:  label,
			group:  actor,
			audio:  filepath.Join(root, o.AudioDir, clip+".wav"),
			frames: filepath.Join(root, o.FramesDir, clip),
		})
	}
	return items, nil
}
