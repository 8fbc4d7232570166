//go:build unix

package vision

import (
	"path/filepath"
	"syscall"
	"testing"
)

// TestDecodeFileFIFO checks that a named pipe is refused, not opened:
// opening one blocks until a writer comes, which may be never.
func TestDecodeFileFIFO(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "pipe.jpg")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Skipf("no named pipes here: %v", err)
	}
	_, err := DecodeFile(fifo, 0)
	checkErr(t, err, ErrInvalid, fifo, "not an image file")
}
