package data

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// maxListBytes bounds the size of a split list, so that pointing a loader
// at a media file by mistake fails quickly instead of reading gigabytes.
const maxListBytes = 256 << 20

// listLine is a non-blank line of a split list with its 1-based number.
type listLine struct {
	no   int
	text string
}

// readList returns the non-blank lines of a split list, without a UTF-8
// byte order mark and without line ends (\n or \r\n: the CREMA-D lists use
// the latter). A missing file gives an error for which
// errors.Is(err, fs.ErrNotExist) holds.
func readList(path string) ([]listLine, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("data: split list: %w", err)
	}
	if fi.IsDir() {
		return nil, &ParseError{File: path, Err: detail(ErrFormat, "a folder, not a split list")}
	}
	if fi.Size() > maxListBytes {
		return nil, &ParseError{File: path, Err: detail(ErrFormat, "%d bytes, more than a split list can be (%d)", fi.Size(), maxListBytes)}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("data: split list: %w", err)
	}
	b = bytes.TrimPrefix(b, []byte("\uFEFF"))
	var lines []listLine
	for no, s := range strings.Split(string(b), "\n") {
		s = strings.TrimSuffix(s, "\r")
		if strings.TrimSpace(s) == "" {
			continue
		}
		lines = append(lines, listLine{no: no + 1, text: s})
	}
	return lines, nil
}

// checkName reports whether name can be a file or folder name inside a
// data set folder: not empty, not "." or "..", without path separators, so
// that a split list cannot point outside the folder.
func checkName(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, `/\`) || strings.ContainsRune(name, 0) {
		return detail(ErrFormat, "%q is not a valid sample name (empty, a dot name or containing a path separator)", name)
	}
	return nil
}

// openClips opens an audio-visual clip data set (CREMA-D, AVE): audio files
// and frame folders under root, the training list and the o.TestSplit list
// (listFile names each list's file, read parses it), modalities "audio"
// [1, F, T] and "visual" [Frames, C, H, W].
func openClips(name, root string, sp MediaSpec, o MediaOptions, listFile func(split string) string,
	read func(file, root string, o MediaOptions) ([]item, error), classes []string, hasGroups bool) (*Source, error) {
	var splits [2]splitList
	inputs := []string{filepath.Join(root, o.AudioDir), filepath.Join(root, o.FramesDir)}
	for k, split := range [2]string{"train", o.TestSplit} {
		file := listFile(split)
		items, err := read(file, root, o)
		if err != nil {
			return nil, err
		}
		splits[k] = splitList{name: [2]string{"train", "test"}[k], file: file, items: items}
		inputs = append(inputs, file)
	}
	mods := []modality{
		{name: "audio", kind: kindAudio, shape: sp.audioShape()},
		{name: "visual", kind: kindFrames, shape: append([]int{sp.Frames}, sp.imageShape()...)},
	}
	return newSource(name, sp, o, mods, classes, hasGroups, splits, inputs)
}
