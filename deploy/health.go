package deploy

import (
	"errors"
	"fmt"
	"sync"
	"time"
)

// Phases of a coordinator's run, as /healthz reports them.
const (
	phaseJoining  = "joining"  // waiting for the participants to start with
	phaseWaiting  = "waiting"  // for participants, between rounds
	phaseRound    = "round"    // a round is in progress
	phaseFinished = "finished" // every round ran
	phaseFailed   = "failed"   // the run stopped with an error
)

// health follows a coordinator's run for /healthz: ready while it waits
// for participants or runs a round, unhealthy when the run failed or made
// no progress (no task sent, no result received, no round begun) for
// longer than stuckAfter, except while waiting for the participants to
// start with, which may take any time.
type health struct {
	stuckAfter time.Duration
	rounds     int
	progress   func() time.Time // the coordinator's last progress
	connected  func() int       // participants available
	now        func() time.Time

	mu    sync.Mutex
	phase string
	round int // the round waited for or in progress
	since time.Time
	want  int // participants waited for
	err   error
}

// set records the run's phase at round (want: participants waited for).
func (h *health) set(phase string, round, want int, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.phase, h.round, h.want, h.err, h.since = phase, round, want, err, h.now()
}

// check returns the state line of a healthy run, or an error saying what
// is wrong.
func (h *health) check() (string, error) {
	h.mu.Lock()
	phase, round, want, err, since := h.phase, h.round, h.want, h.err, h.since
	h.mu.Unlock()
	now := h.now()
	last := since
	if p := h.progress(); p.After(last) {
		last = p
	}
	idle := now.Sub(last)
	stuck := func(what string) error {
		return fmt.Errorf("stuck: %s made no progress for %v (limit %v)", what, idle.Round(time.Second), h.stuckAfter)
	}
	switch phase {
	case phaseJoining, phaseWaiting:
		what := fmt.Sprintf("waiting for participants before round %d/%d (%d connected, %d needed)", round, h.rounds, h.connected(), want)
		if phase == phaseWaiting && idle > h.stuckAfter {
			return "", stuck(what)
		}
		return "ok: " + what, nil
	case phaseRound:
		what := fmt.Sprintf("round %d/%d", round, h.rounds)
		if idle > h.stuckAfter {
			return "", stuck(what)
		}
		return fmt.Sprintf("ok: %s in progress, last progress %v ago", what, idle.Round(time.Second)), nil
	case phaseFinished:
		return fmt.Sprintf("ok: finished, all %d rounds done", h.rounds), nil
	case phaseFailed:
		return "", fmt.Errorf("failed in round %d: %w", round, err)
	}
	return "", errors.New("starting")
}
