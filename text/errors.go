package text

import "errors"

// Sentinel errors. Functions of this package wrap them with context (which
// value is wrong and what was expected), so test for them with errors.Is.
var (
	// ErrConfig is returned when a HashedBag setting is out of range: a
	// dimension below 1 or above MaxDim, or an n-gram order outside 1..MaxN.
	ErrConfig = errors.New("bad configuration")

	// ErrShape is returned when lengths disagree: a destination or feature
	// vector whose length is not the featuriser's dimension, or document
	// frequencies of another length.
	ErrShape = errors.New("inconsistent shape")

	// ErrFormat is returned when stored statistics are impossible, for
	// example a document frequency that is negative or exceeds the number
	// of documents, as may happen with a hand-edited or corrupt IDF file.
	ErrFormat = errors.New("bad format")
)
