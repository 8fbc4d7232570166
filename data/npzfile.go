package data

import (
	"fmt"
	"os"
	"slices"
	"strings"

	"codeberg.org/sbinet/npyio/npz"
)

// ReadNPZ reads one .npz file of the format LoadNPZ reads ("labels", an
// optional "groups", one N x D array per modality) with those of the
// named modalities that it holds, in the order named; missing lists the
// others. NumClasses is the largest label + 1 (callers scoring a model set
// it to the model's). A file holding none of the modalities is an error.
// Errors are those of LoadNPZ; the arrays may decompress to at most
// DefaultNPZMaxBytes (see ReadNPZLimit).
func ReadNPZ(path string, modalities []string) (set *Set, missing []string, err error) {
	return ReadNPZLimit(path, modalities, 0)
}

// ReadNPZLimit is ReadNPZ with the arrays it reads allowed to decompress to
// at most maxBytes, as NPZOptions.MaxBytes (a run's data.npz_max_mb); 0
// means DefaultNPZMaxBytes.
func ReadNPZLimit(path string, modalities []string, maxBytes int64) (set *Set, missing []string, err error) {
	if maxBytes, err = npzMaxBytes(path, "maxBytes", maxBytes); err != nil {
		return nil, nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("data: load %s: %w", path, err)
	}
	info, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("data: load %s: %w", path, err)
	}
	zr, err := npz.NewReader(f, info.Size())
	if err != nil {
		f.Close()
		return nil, nil, &ParseError{File: path, Err: fmt.Errorf("%w: not a valid .npz (zip) archive: %w", ErrFormat, err)}
	}
	var have []string
	for _, key := range zr.Keys() {
		have = append(have, strings.TrimSuffix(key, ".npy"))
	}
	f.Close()
	var present []string
	for _, m := range modalities {
		if slices.Contains(have, m) {
			present = append(present, m)
		} else {
			missing = append(missing, m)
		}
	}
	if len(present) == 0 {
		return nil, nil, &ParseError{File: path, Err: detail(ErrUnknownModality, "holds none of the modalities %s (has %s)",
			strings.Join(modalities, ", "), strings.Join(have, ", "))}
	}
	set, err = readNPZSet(path, present, maxBytes)
	if err != nil {
		return nil, nil, err
	}
	set.NumClasses = slices.Max(set.Labels) + 1
	return set, missing, nil
}
