//go:build race

package data

// raceEnabled reports whether the tests run under the race detector, which
// makes decoding some ten times slower; the real-data test then decodes a
// subset.
const raceEnabled = true
