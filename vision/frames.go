package vision

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// MaxFrames bounds the number of frames [LoadFrames] returns per clip.
const MaxFrames = 4096

// LoadFrames reads the frames of one clip from dir, a folder of image
// files as extracted from a video (for example by ffmpeg at one frame per
// second), and returns k of them decoded with the given number of channels
// (0 for as stored, 1 or 3; see [Decode]).
//
// The frames are the files whose names end in .jpg, .jpeg or .png (in any
// case), sorted by name with numbers by value (frame_2 before frame_10, as
// zero-padded frame_002 before frame_010). Hidden files (names starting with ".") and
// sub-folders are skipped; other files are ignored. The first k frames are
// taken, as the FedCMI reference code takes the first num_frame frames of a
// clip. When the folder holds fewer than k frames, the last one is
// repeated to make k: the repeats are copies, so that the caller may modify
// each returned image independently. Frames are not resized; a [Pipeline]
// does that.
//
// A missing folder gives an error for which errors.Is(err, fs.ErrNotExist)
// holds, a folder without frames [ErrNoFrames]; both name the folder. A
// frame that fails to decode gives the error of [DecodeFile], naming the
// file. k must be between 1 and [MaxFrames].
func LoadFrames(dir string, k, channels int) ([]*Image, error) {
	if k < 1 || k > MaxFrames {
		return nil, &Error{Path: dir, Err: errorf(ErrInvalid, "frames: k = %d, want 1 to %d", k, MaxFrames)}
	}
	if channels != 0 && channels != 1 && channels != 3 {
		return nil, &Error{Path: dir,
			Err: errorf(ErrInvalid, "frames: channels = %d, want 0 (as stored), 1 or 3", channels)}
	}
	names, err := FrameFiles(dir)
	if err != nil {
		return nil, err
	}
	frames := make([]*Image, 0, k)
	for _, name := range names[:min(k, len(names))] {
		m, err := DecodeFile(filepath.Join(dir, name), channels)
		if err != nil {
			return nil, err
		}
		frames = append(frames, m)
	}
	for last := frames[len(frames)-1]; len(frames) < k; {
		frames = append(frames, last.Clone())
	}
	return frames, nil
}

// FrameFiles returns the names (not paths) of the frame files in dir, in
// the order [LoadFrames] takes them. It fails, naming the folder, when dir
// is missing, is not a folder, or holds no frames.
func FrameFiles(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			return nil, &Error{Path: dir, Err: fmt.Errorf("frames folder: %w", pe.Err)}
		}
		return nil, &Error{Path: dir, Err: err}
	}
	var names []string
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") || e.IsDir() {
			continue
		}
		switch strings.ToLower(filepath.Ext(name)) {
		case ".jpg", ".jpeg", ".png":
			names = append(names, name)
		}
	}
	if len(names) == 0 {
		return nil, &Error{Path: dir, Err: errorf(ErrNoFrames, "folder holds no .jpg, .jpeg or .png files")}
	}
	slices.SortFunc(names, compareNatural)
	return names, nil
}

// compareNatural orders names as a person numbers frames: runs of digits
// by their value (frame_2 before frame_10), the rest byte-wise, and, for
// equal values, fewer leading zeros first so that the order stays total.
// Zero-padded names (%05d.jpg) keep their byte-wise order.
func compareNatural(a, b string) int {
	for a != "" && b != "" {
		da, db := digitRun(a), digitRun(b)
		if da == 0 || db == 0 {
			if a[0] != b[0] {
				return cmp.Compare(a[0], b[0])
			}
			a, b = a[1:], b[1:]
			continue
		}
		na, nb := strings.TrimLeft(a[:da], "0"), strings.TrimLeft(b[:db], "0")
		if c := cmp.Or(cmp.Compare(len(na), len(nb)), strings.Compare(na, nb), cmp.Compare(da, db)); c != 0 {
			return c
		}
		a, b = a[da:], b[db:]
	}
	return cmp.Compare(len(a), len(b))
}

// digitRun returns the length of the run of ASCII digits at the start of s.
func digitRun(s string) int {
	i := 0
	for i < len(s) && '0' <= s[i] && s[i] <= '9' {
		i++
	}
	return i
}
