package vision

import (
	"errors"
	"fmt"
)

// Sentinel errors. Every error returned by this package is an [*Error]
// that wraps one of them, or else the error of the file system or of the
// caller's reader (a missing file satisfies errors.Is(err, fs.ErrNotExist)),
// so test for them with errors.Is.
var (
	// ErrFormat is returned for input in a format this package does not
	// read: an image that is neither JPEG nor PNG, a JPEG or PNG feature
	// the standard library does not support, a file that is not IDX, or an
	// IDX element type that an MNIST reader cannot use.
	ErrFormat = errors.New("unsupported format")

	// ErrCorrupt is returned for input in a supported format whose content
	// is malformed: bad markers or chunks, failed checksums, trailing data
	// after an IDX payload.
	ErrCorrupt = errors.New("corrupt input")

	// ErrTruncated is returned when input ends before the data its header
	// declares; the message gives the expected and the received size where
	// they are known.
	ErrTruncated = errors.New("truncated input")

	// ErrTooLarge is returned when a header declares, or a caller asks for,
	// more than a limit of this package allows ([MaxPixels],
	// [MaxIDXBytes], [MaxFrames]), before any large allocation is made.
	ErrTooLarge = errors.New("too large")

	// ErrInvalid is returned for invalid arguments: an [Image] whose Pix
	// length does not match its shape, a non-positive size, a channel count
	// other than 0, 1 or 3, a probability outside [0, 1].
	ErrInvalid = errors.New("invalid argument")

	// ErrNoFrames is returned by [LoadFrames] for a folder that holds no
	// JPEG or PNG files.
	ErrNoFrames = errors.New("no frames")
)

// Error is the type of every error this package returns. It names the file
// or folder concerned, when there is one, and wraps the cause, which in turn
// wraps one of the sentinel errors above (and, where there is one, the
// underlying error of the standard library, such as a *fs.PathError or a
// jpeg.FormatError).
type Error struct {
	Path string // file or folder as given by the caller, or "" for readers and transforms
	Err  error  // the cause
}

// Error formats the error as "vision: PATH: CAUSE", or "vision: CAUSE"
// when Path is empty, for example
// "vision: frames/clip1/0003.jpg: truncated input: JPEG: unexpected EOF".
func (e *Error) Error() string {
	msg := "unknown error"
	if e.Err != nil {
		msg = e.Err.Error()
	}
	if e.Path == "" {
		return "vision: " + msg
	}
	return "vision: " + e.Path + ": " + msg
}

// Unwrap returns the cause, so that errors.Is and errors.As see the
// sentinels and the underlying errors.
func (e *Error) Unwrap() error { return e.Err }

// errorf builds a cause that wraps sentinel; the message reads
// "SENTINEL: DETAIL". Further %w verbs in format wrap more errors.
func errorf(sentinel error, format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{sentinel}, args...)...)
}

// wrap turns a cause into an *Error for path, leaving nil alone and not
// wrapping an *Error twice (an inner path is kept as the more precise one).
func wrap(path string, err error) error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		if e.Path == "" && path != "" {
			return &Error{Path: path, Err: e.Err}
		}
		return err
	}
	return &Error{Path: path, Err: err}
}
