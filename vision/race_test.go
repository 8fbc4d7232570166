//go:build race

package vision

// raceEnabled reports whether the tests run under the race detector, which
// makes the loops over the 47 million MNIST training pixels some ten times
// slower.
const raceEnabled = true
