//go:build !race

package vision

// raceEnabled reports whether the tests run under the race detector.
const raceEnabled = false
