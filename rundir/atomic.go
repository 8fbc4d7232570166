package rundir

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
)

// tempName matches the names of writeAtomic's temporary files:
// os.CreateTemp replaces the pattern's "*" with decimal digits.
var tempName = regexp.MustCompile(`^\..+\.tmp[0-9]+$`)

// removeStaleTemps removes the temporary files that an interrupted
// writeAtomic left in dir (a crash between creating and renaming one) and
// returns their names. Only regular files named like writeAtomic's
// temporary files are touched.
func removeStaleTemps(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("rundir: clean %s: %w", dir, err)
	}
	var removed []string
	var errs []error
	for _, e := range ents {
		if !e.Type().IsRegular() || !tempName.MatchString(e.Name()) {
			continue
		}
		p := filepath.Join(dir, e.Name())
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("rundir: remove stale temporary file %s: %w", p, err))
			continue
		}
		removed = append(removed, e.Name())
	}
	return removed, errors.Join(errs...)
}

// WriteFileAtomic replaces dir/name with what write writes, as
// Run.WriteAtomic does (but for any directory and name): through a
// temporary file in dir, synced and renamed, the directory then synced;
// on any failure the old file stays and the temporary file is removed.
func WriteFileAtomic(dir, name string, write func(io.Writer) error) error {
	return writeAtomic(dir, name, write)
}

// writeAtomic replaces dir/name with what write writes, through a temporary
// file in dir (so that the rename stays on one file system). The temporary
// file is removed on every failure, including a panic in write.
func writeAtomic(dir, name string, write func(io.Writer) error) (err error) {
	path := filepath.Join(dir, name)
	tmp, err := os.CreateTemp(dir, "."+name+".tmp*")
	if err != nil {
		return fmt.Errorf("rundir: write %s: %w", path, err)
	}
	done := false
	defer func() {
		if !done {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	bw := bufio.NewWriterSize(tmp, 64<<10)
	if err := write(bw); err != nil {
		return fmt.Errorf("rundir: write %s: %w", path, err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("rundir: write %s: %w", path, err)
	}
	// CreateTemp makes the file private; results are meant to be shared
	// like any other file.
	if err := tmp.Chmod(0o644); err != nil {
		return fmt.Errorf("rundir: write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("rundir: sync %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("rundir: close %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("rundir: write %s: %w", path, err)
	}
	done = true
	return syncDir(dir)
}

// syncDir makes a rename in dir durable. Windows cannot sync a directory,
// and its renames need no such step.
func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("rundir: sync directory %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("rundir: sync directory %s: %w", dir, err)
	}
	return nil
}
