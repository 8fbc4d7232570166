package data

import (
	"context"
	"math"
	"path/filepath"
	"strconv"
	"strings"
)

// aveClasses are AVE's 28 event categories in the order of their first
// appearance in the data set's lists (the same in trainSet.txt, valSet.txt
// and testSet.txt, and in AVE's Annotations.txt).
var aveClasses = []string{
	"Church bell", "Male speech, man speaking", "Bark", "Fixed-wing aircraft, airplane",
	"Race car, auto racing", "Female speech, woman speaking", "Helicopter", "Violin, fiddle",
	"Flute", "Ukulele", "Frying (food)", "Truck", "Shofar", "Motorcycle", "Acoustic guitar",
	"Train horn", "Clock", "Banjo", "Goat", "Baby cry, infant cry", "Bus", "Chainsaw", "Cat",
	"Horse", "Toilet flush", "Rodents, rats, mice", "Accordion", "Mandolin",
}

// AVEClasses returns AVE's 28 event categories in class order: the order
// in which they first appear in the split lists, which is the order the
// reference code's class_dict gets by collecting categories from
// testSet.txt line by line ("Church bell" is 0, "Mandolin" 27). It is not
// alphabetical.
func AVEClasses() []string { return append([]string(nil), aveClasses...) }

// OpenAVE opens the AVE data set (Audio-Visual Event localisation) with
// its audio extracted to WAV and frames extracted per video:
//
//	root/AudioWAV/<videoID>.wav             (MediaOptions.AudioDir)
//	root/Image-01-FPS-SE/<videoID>/*.jpg    (MediaOptions.FramesDir)
//	splitDir/trainSet.txt, splitDir/testSet.txt (or valSet.txt)
//
// splitDir defaults to root; the authors' lists are in the project's shared
// data, splits/ave. Each line is "Category&videoID&quality&start&end",
// for example "Church bell&RUhOCu3LNXM&good&0&10", with the event's start
// and end in seconds. The label is Category, which must be one of
// [AVEClasses]. The test set is testSet.txt; with MediaOptions.TestSplit
// "val" it is valSet.txt instead. Otherwise valSet.txt is not read.
//
// The audio of a sample is the window [start, end) of the video's WAV
// file, tiled to ClipSeconds (10 s by default); the frames are the first
// Frames of the folder, which should, like the authors' "-SE" folders,
// hold frames of the event window only (the loader cannot tell frame
// times). A video listed more than once in a list (27 of the 3338 lines of
// trainSet.txt repeat a video with another category) is kept once, with
// its first line's category, as the reference code does; so the authors'
// lists give 3311 training, 402 test and 401 validation samples. A video
// may still appear in both the training and the test list, as in the
// reference. AVE has no natural
// owners: the Sets have no groups.
//
// The Sets have the modalities "audio" ([1, F, T], 1 x 257 x 1004 by
// default) and "visual" ([Frames, Channels, ImageSize, ImageSize],
// 4 x 3 x 64 x 64 by default); see [DefaultAVESpec]. Errors are as for
// [OpenCremaD].
func OpenAVE(root, splitDir string, spec MediaSpec, opts *MediaOptions) (*Source, error) {
	sp, err := spec.resolve(DefaultAVESpec(), uses{audio: true, frames: true, image: true})
	if err != nil {
		return nil, err
	}
	o, err := opts.resolve("ave", "AudioWAV", "Image-01-FPS-SE", "test", "val")
	if err != nil {
		return nil, err
	}
	if splitDir == "" {
		splitDir = root
	}
	listFile := func(split string) string { return filepath.Join(splitDir, split+"Set.txt") }
	return openClips("ave", root, sp, o, listFile, readAVEList, aveClasses, false)
}

// LoadAVE opens AVE with [OpenAVE] and decodes it with [Source.Load].
func LoadAVE(ctx context.Context, root, splitDir string, spec MediaSpec, opts *MediaOptions) (train, test *Set, err error) {
	src, err := OpenAVE(root, splitDir, spec, opts)
	if err != nil {
		return nil, nil, err
	}
	return src.Load(ctx)
}

// readAVEList parses one AVE split list.
func readAVEList(file, root string, o MediaOptions) ([]item, error) {
	lines, err := readList(file)
	if err != nil {
		return nil, err
	}
	items := make([]item, 0, len(lines))
	seen := make(map[string]bool, len(lines))
	for _, ln := range lines {
		fail := func(col int, err error) error {
			return &ParseError{File: file, Line: ln.no, Column: col, Err: err}
		}
		fields := strings.Split(ln.text, "&")
		if len(fields) != 5 {
			return nil, fail(0, detail(ErrFormat, "%d fields, want Category&videoID&quality&start&end: %q", len(fields), ln.text))
		}
		cat, id := strings.TrimSpace(fields[0]), strings.TrimSpace(fields[1])
		label := indexOf(aveClasses, cat)
		if label < 0 {
			return nil, fail(1, detail(ErrLabel, "category %q is not one of the 28 AVE categories", cat))
		}
		if err := checkName(id); err != nil {
			return nil, fail(2, err)
		}
		var times [2]float64
		for j, f := range fields[3:5] {
			v, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
			if err != nil || math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
				return nil, fail(4+j, detail(ErrFormat, "event time %q is not a number of seconds >= 0", f))
			}
			times[j] = v
		}
		if times[1] <= times[0] {
			return nil, fail(5, detail(ErrFormat, "event ends at %v s, not after its start at %v s", times[1], times[0]))
		}
		if seen[id] {
			continue
		}
		seen[id] = true
		items = append(items, item{
			id:     id,
			label:  label,
			audio:  filepath.Join(root, o.AudioDir, id+".wav"),
			start:  times[0],
			end:    times[1],
			frames: filepath.Join(root, o.FramesDir, id),
		})
	}
	return items, nil
}
