package data

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Sentinel errors. Functions of this package wrap them with context (the
// file, array, modality or row concerned), so test for them with errors.Is.
var (
	// ErrShape is returned when lengths or shapes disagree: a feature array
	// whose size is not rows x dimension, arrays with different row counts,
	// a dimension that differs between train and test, an empty set.
	ErrShape = errors.New("inconsistent shape")

	// ErrLabel is returned when a label is negative, not below the number of
	// classes, or stored with a non-integer type.
	ErrLabel = errors.New("bad label")

	// ErrNonFinite is returned when a feature value is NaN or infinite.
	ErrNonFinite = errors.New("non-finite feature value")

	// ErrUnknownModality is returned when a modality, array or view name is
	// not among those available; the message lists the available ones.
	ErrUnknownModality = errors.New("unknown modality")

	// ErrFormat is returned when a file is not in the expected format:
	// a corrupt archive, an unsupported array type, a malformed number.
	ErrFormat = errors.New("bad format")

	// ErrInfeasible is returned when a partition cannot satisfy its
	// constraints, for example when Dirichlet cannot give every client its
	// minimum number of samples.
	ErrInfeasible = errors.New("infeasible partition")

	// ErrCacheMismatch is returned by Prepare for a cache folder that was
	// built with another media spec, from another data set or other
	// samples, or by another version of the cache format. The message names
	// both sides and says how to rebuild.
	ErrCacheMismatch = errors.New("cache built with other settings")
)

// ParseError reports a problem at a known place in an input file. It names
// the file and, where they apply, the array inside it (for .npz archives) or
// the line and column (for text matrices). A sample row, when relevant, is
// named in Err's message.
type ParseError struct {
	File   string // path of the file as given to the loader
	Array  string // array name inside an .npz archive, or ""
	Line   int    // 1-based line number in a text file, or 0
	Column int    // 1-based whitespace-separated field number, or 0
	Err    error  // what went wrong; often wraps one of the sentinels above
}

// Error formats the location followed by the cause, for example
// `data: dir/mfeat-fou:12:3: bad format: strconv.ParseFloat: parsing "x":
// invalid syntax` or `data: dir/train.npz: array "labels": bad label: row 4
// has negative label -1`.
func (e *ParseError) Error() string {
	var b strings.Builder
	b.WriteString("data: ")
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteString(":" + strconv.Itoa(e.Line))
		if e.Column > 0 {
			b.WriteString(":" + strconv.Itoa(e.Column))
		}
	}
	if e.Array != "" {
		fmt.Fprintf(&b, ": array %q", e.Array)
	}
	b.WriteString(": ")
	if e.Err != nil {
		b.WriteString(e.Err.Error())
	} else {
		b.WriteString("unknown error")
	}
	return b.String()
}

// Unwrap returns the underlying error, so errors.Is sees the sentinels.
func (e *ParseError) Unwrap() error { return e.Err }

// detail joins a sentinel with a specific message, so that the message
// reads naturally and errors.Is still finds the sentinel.
func detail(sentinel error, format string, args ...any) error {
	return fmt.Errorf("%w: %s", sentinel, fmt.Sprintf(format, args...))
}
