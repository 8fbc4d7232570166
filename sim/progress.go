package sim

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/fedcmi/fedcmi/fl"
	"github.com/fedcmi/fedcmi/model"
)

// Tracker follows a simulation through its rounds and their clients'
// local training steps, for a live status line (Status). Its methods are
// safe for concurrent use; the zero value is not usable, see NewTracker.
type Tracker struct {
	mu         sync.Mutex
	now        func() time.Time
	rounds     int
	round      int // the round in progress or last completed; 0 before the first
	inRound    bool
	roundStart time.Time
	planned    map[string]int // steps per client of the round: estimated, exact once it started
	done       map[string]int // steps done per client
	completed  int            // rounds completed by this process
	spent      time.Duration  // their wall time

	afterStep func(round, steps int) // tests: called after every step, outside the lock
}

// NewTracker returns a tracker of a run not yet started.
func NewTracker() *Tracker { return &Tracker{now: time.Now} }

// start sets the run's number of rounds and the last round completed
// before (on resume).
func (t *Tracker) start(rounds, completed int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.rounds, t.round = rounds, completed
}

// beginRound starts round with the steps each client is expected to take.
func (t *Tracker) beginRound(round int, planned map[string]int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.round, t.inRound, t.roundStart = round, true, t.now()
	t.planned, t.done = planned, make(map[string]int, len(planned))
}

// step records that client id did its done-th of total steps of round.
func (t *Tracker) step(id string, round, done, total int) {
	t.mu.Lock()
	var steps int
	if round == t.round && t.inRound {
		t.planned[id], t.done[id] = total, done
		for _, n := range t.done {
			steps += n
		}
	}
	hook := t.afterStep
	t.mu.Unlock()
	if hook != nil {
		hook(round, steps)
	}
}

// endRound marks round complete.
func (t *Tracker) endRound(round int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.inRound && round == t.round {
		t.completed++
		t.spent += t.now().Sub(t.roundStart)
	}
	t.inRound = false
}

// Status returns the tracker's view of the run now.
func (t *Tracker) Status() Status {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := Status{Round: t.round, Rounds: t.rounds, InRound: t.inRound}
	if t.completed > 0 {
		s.MeanRound = t.spent / time.Duration(t.completed)
	}
	if !t.inRound {
		return s
	}
	s.Elapsed = t.now().Sub(t.roundStart)
	for id, n := range t.planned {
		s.Total += n
		s.Steps += t.done[id]
	}
	return s
}

// Status is a run's progress at one moment.
type Status struct {
	// Round is the round in progress (InRound) or the last one completed;
	// Rounds the run's number of rounds.
	Round, Rounds int
	InRound       bool
	// Steps and Total count the local training steps of the round's
	// clients done so far and in all (the clients not started yet
	// estimated from their data).
	Steps, Total int
	// Elapsed is the wall time of the round so far.
	Elapsed time.Duration
	// MeanRound is the mean wall time of the rounds completed so far by
	// this process (0: none yet).
	MeanRound time.Duration
}

// Rate returns the steps per second of the round so far (0: unknown).
func (s Status) Rate() float64 {
	if s.Steps == 0 || s.Elapsed <= 0 {
		return 0
	}
	return float64(s.Steps) / s.Elapsed.Seconds()
}

// RoundETA returns the time the round's remaining steps should take at
// the rate so far (ok false: unknown before the first step).
func (s Status) RoundETA() (eta time.Duration, ok bool) {
	r := s.Rate()
	if !s.InRound || r == 0 {
		return 0, false
	}
	return time.Duration(float64(max(s.Total-s.Steps, 0)) / r * float64(time.Second)), true
}

// RunETA returns the time left until the run's last round completes. Once
// a round has completed, every round is taken to last the mean round time
// (this one's remaining share by its steps to go), which steadies the
// estimate against a slow start (graphs compiled in a round's first
// steps); before, the round's ETA at its rate so far, then each remaining
// round as long as this one.
func (s Status) RunETA() (time.Duration, bool) {
	left := time.Duration(s.Rounds - s.Round)
	switch {
	case s.MeanRound > 0 && !s.InRound:
		return left * s.MeanRound, true
	case s.MeanRound > 0:
		togo := 1.0
		if s.Total > 0 {
			togo = float64(max(s.Total-s.Steps, 0)) / float64(s.Total)
		}
		return time.Duration(togo*float64(s.MeanRound)) + left*s.MeanRound, true
	}
	eta, ok := s.RoundETA()
	if !ok {
		return 0, false
	}
	return eta + left*(s.Elapsed+eta), true
}

// String formats s as one line: "round 3/10  step 120/400 (30%)  35.2
// steps/s  ETA 8s  run ETA 6m10s".
func (s Status) String() string {
	if s.Rounds == 0 || !s.InRound && s.Round == 0 {
		return "preparing"
	}
	var b strings.Builder
	if !s.InRound {
		fmt.Fprintf(&b, "round %d/%d done", s.Round, s.Rounds)
	} else {
		fmt.Fprintf(&b, "round %d/%d", s.Round, s.Rounds)
		switch {
		case s.Steps == 0:
			b.WriteString("  starting")
		case s.Steps >= s.Total:
			fmt.Fprintf(&b, "  step %d/%d  evaluating", s.Steps, s.Total)
		default:
			fmt.Fprintf(&b, "  step %d/%d (%d%%)  %s steps/s", s.Steps, s.Total, 100*s.Steps/max(s.Total, 1), formatRate(s.Rate()))
			if eta, ok := s.RoundETA(); ok {
				fmt.Fprintf(&b, "  ETA %s", FormatDuration(eta))
			}
		}
	}
	if eta, ok := s.RunETA(); ok && s.Round < s.Rounds {
		fmt.Fprintf(&b, "  run ETA %s", FormatDuration(eta))
	}
	return b.String()
}

// Short formats s compactly, for a line that shows several runs: "r3/10
// 30% ETA 6m10s" (the share of the round's steps done, the run's ETA), or
// "r3/10 done ETA 6m" between rounds.
func (s Status) Short() string {
	if s.Rounds == 0 || !s.InRound && s.Round == 0 {
		return "preparing"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "r%d/%d", s.Round, s.Rounds)
	switch {
	case !s.InRound:
		b.WriteString(" done")
	case s.Total > 0:
		fmt.Fprintf(&b, " %d%%", 100*min(s.Steps, s.Total)/s.Total)
	}
	if eta, ok := s.RunETA(); ok && (s.InRound || s.Round < s.Rounds) {
		fmt.Fprintf(&b, " ETA %s", FormatDuration(eta))
	}
	return b.String()
}

func formatRate(r float64) string {
	if r >= 10 {
		return fmt.Sprintf("%.0f", r)
	}
	return fmt.Sprintf("%.1f", r)
}

// FormatDuration formats d for a status line, rounded to the second:
// "8s", "6m10s", "2h05m".
func FormatDuration(d time.Duration) string {
	d = d.Round(time.Second)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d/time.Minute), int(d%time.Minute/time.Second))
	}
	return fmt.Sprintf("%dh%02dm", int(d/time.Hour), int(d%time.Hour/time.Minute))
}

// trackingStrategy tells a tracker which clients a round trains and how
// many steps each should take (epochs x batches of its data).
type trackingStrategy struct {
	fl.Strategy
	tracker *Tracker
	samples map[string]int
	batch   int
}

func (s trackingStrategy) ConfigureFit(round int, global model.Params, clients []fl.ClientInfo) ([]fl.Instruction, error) {
	ins, err := s.Strategy.ConfigureFit(round, global, clients)
	planned := make(map[string]int, len(ins))
	for _, in := range ins {
		planned[in.ClientID] = in.Ins.Config.Epochs * ((s.samples[in.ClientID] + s.batch - 1) / s.batch)
	}
	s.tracker.beginRound(round, planned)
	return ins, err
}

// StatusLine shows a live one-line status on a terminal, redrawn in
// place, and clears it whenever other output goes to the terminal through
// Writer. A nil *StatusLine shows nothing and passes output through.
type StatusLine struct {
	mu     sync.Mutex
	w      io.Writer
	width  int
	shown  bool
	cancel context.CancelFunc
	done   chan struct{}
}

// NewStatusLine returns a status line drawn on w, a terminal width
// columns wide (lines are cut to fit; width < 2 means 80).
func NewStatusLine(w io.Writer, width int) *StatusLine {
	if width < 2 {
		width = 80
	}
	return &StatusLine{w: w, width: width}
}

// Start draws render's line every interval until Stop. It replaces a
// previous Start's renderer.
func (l *StatusLine) Start(render func() string, every time.Duration) {
	if l == nil {
		return
	}
	l.Stop()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	l.mu.Lock()
	l.cancel, l.done = cancel, done
	l.mu.Unlock()
	go func() {
		defer close(done)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			l.draw(render())
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
}

// Stop stops drawing and clears the line.
func (l *StatusLine) Stop() {
	if l == nil {
		return
	}
	l.mu.Lock()
	cancel, done := l.cancel, l.done
	l.cancel, l.done = nil, nil
	l.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.clearLocked()
}

func (l *StatusLine) draw(line string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	io.WriteString(l.w, "\r"+Fit(line, l.width-1)+"\x1b[K")
	l.shown = true
}

func (l *StatusLine) clearLocked() {
	if l.shown {
		io.WriteString(l.w, "\r\x1b[K")
		l.shown = false
	}
}

// Writer returns a writer to w (the same terminal, or another stream to
// it) that clears the status line before every write; the next tick draws
// it again below the output. With a nil l it returns w.
func (l *StatusLine) Writer(w io.Writer) io.Writer {
	if l == nil {
		return w
	}
	return statusWriter{l, w}
}

type statusWriter struct {
	l *StatusLine
	w io.Writer
}

func (s statusWriter) Write(p []byte) (int, error) {
	s.l.mu.Lock()
	defer s.l.mu.Unlock()
	s.l.clearLocked()
	return s.w.Write(p)
}

// Fit cuts line to at most width characters, ending a cut line with "…".
func Fit(line string, width int) string {
	if width < 1 || utf8.RuneCountInString(line) <= width {
		return line
	}
	r := []rune(line)
	return string(r[:width-1]) + "…"
}
