package sim

import (
	"strings"
	"testing"
	"time"
)

func TestStatusString(t *testing.T) {
	sec := time.Second
	for _, tc := range []struct {
		name string
		s    Status
		want string
	}{
		{"before the first round", Status{Rounds: 10}, "preparing"},
		{"no rounds known", Status{}, "preparing"},
		{"round starting, nothing known", Status{Round: 1, Rounds: 10, InRound: true, Total: 80, Elapsed: 2 * sec}, "round 1/10  starting"},
		{"first round, stepping", Status{Round: 1, Rounds: 10, InRound: true, Steps: 20, Total: 80, Elapsed: 4 * sec},
			// 5 steps/s, 60 steps left: 12s; 9 more rounds of 16s each.
			"round 1/10  step 20/80 (25%)  5.0 steps/s  ETA 12s  run ETA 2m36s"},
		{"later round, mean known", Status{Round: 4, Rounds: 10, InRound: true, Steps: 300, Total: 400, Elapsed: 10 * sec, MeanRound: 14 * sec},
			"round 4/10  step 300/400 (75%)  30 steps/s  ETA 3s  run ETA 1m28s"},
		{"compiling, mean known", Status{Round: 4, Rounds: 10, InRound: true, Total: 400, Elapsed: 5 * sec, MeanRound: 14 * sec},
			"round 4/10  starting  run ETA 1m38s"},
		{"evaluating", Status{Round: 2, Rounds: 3, InRound: true, Steps: 50, Total: 50, Elapsed: 5 * sec, MeanRound: 6 * sec},
			"round 2/3  step 50/50  evaluating  run ETA 6s"},
		{"between rounds", Status{Round: 2, Rounds: 3, MeanRound: 90 * sec}, "round 2/3 done  run ETA 1m30s"},
		{"last round done", Status{Round: 3, Rounds: 3, MeanRound: 90 * sec}, "round 3/3 done"},
		{"last round running", Status{Round: 3, Rounds: 3, InRound: true, Steps: 1, Total: 4, Elapsed: sec, MeanRound: sec},
			"round 3/3  step 1/4 (25%)  1.0 steps/s  ETA 3s"}, // the run ETA would repeat the round's
		{"hours", Status{Round: 1, Rounds: 100, InRound: true, Steps: 10, Total: 20, Elapsed: 60 * sec},
			"round 1/100  step 10/20 (50%)  0.2 steps/s  ETA 1m00s  run ETA 3h19m"},
	} {
		if got := tc.s.String(); got != tc.want {
			t.Errorf("%s: %+v\n got %q\nwant %q", tc.name, tc.s, got, tc.want)
		}
	}
}

func TestStatusShort(t *testing.T) {
	sec := time.Second
	for _, tc := range []struct {
		s    Status
		want string
	}{
		{Status{Rounds: 10}, "preparing"},
		{Status{Round: 1, Rounds: 10, InRound: true, Total: 80, Elapsed: 2 * sec}, "r1/10 0%"},
		{Status{Round: 1, Rounds: 10, InRound: true, Steps: 20, Total: 80, Elapsed: 4 * sec}, "r1/10 25% ETA 2m36s"},
		{Status{Round: 2, Rounds: 3, InRound: true, Steps: 50, Total: 50, Elapsed: 5 * sec, MeanRound: 6 * sec}, "r2/3 100% ETA 6s"},
		{Status{Round: 2, Rounds: 3, MeanRound: 90 * sec}, "r2/3 done ETA 1m30s"},
		{Status{Round: 3, Rounds: 3, MeanRound: 90 * sec}, "r3/3 done"},
	} {
		if got := tc.s.Short(); got != tc.want {
			t.Errorf("%+v: got %q, want %q", tc.s, got, tc.want)
		}
	}
}

func TestFormatDuration(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{
		{0, "0s"}, {400 * time.Millisecond, "0s"}, {1500 * time.Millisecond, "2s"}, {59 * time.Second, "59s"},
		{time.Minute, "1m00s"}, {6*time.Minute + 10*time.Second, "6m10s"}, {time.Hour - time.Second, "59m59s"},
		{time.Hour, "1h00m"}, {2*time.Hour + 5*time.Minute + 40*time.Second, "2h05m"}, {30 * time.Hour, "30h00m"},
	} {
		if got := FormatDuration(tc.d); got != tc.want {
			t.Errorf("FormatDuration(%v) = %q, want %q", tc.d, got, tc.want)
		}
	}
}

func TestFit(t *testing.T) {
	for _, tc := range []struct {
		line  string
		width int
		want  string
	}{
		{"round 1/10", 20, "round 1/10"},
		{"round 1/10", 10, "round 1/10"},
		{"round 1/10", 6, "round…"},
		{"α β γ δ", 4, "α β…"},
		{"abc", 0, "abc"},
	} {
		if got := Fit(tc.line, tc.width); got != tc.want {
			t.Errorf("Fit(%q, %d) = %q, want %q", tc.line, tc.width, got, tc.want)
		}
	}
}

// TestTracker follows two clients through a round on a fake clock: the
// steps of a client not started are estimated, replaced by its own count
// once it steps; the round's time feeds the mean.
func TestTracker(t *testing.T) {
	now := time.Unix(0, 0)
	tr := &Tracker{now: func() time.Time { return now }}
	tr.start(5, 1) // resumed after round 1
	if s := tr.Status(); s.String() != "round 1/5 done" {
		t.Errorf("resumed tracker: %q", s)
	}
	tr.beginRound(2, map[string]int{"a": 10, "b": 10})
	now = now.Add(2 * time.Second)
	tr.step("a", 2, 4, 12) // a has 12 steps, not 10
	tr.step("x", 1, 5, 5)  // another round's step is ignored
	s := tr.Status()
	if s.Round != 2 || s.Steps != 4 || s.Total != 22 || s.Elapsed != 2*time.Second || s.MeanRound != 0 {
		t.Fatalf("status %+v", s)
	}
	now = now.Add(8 * time.Second)
	tr.endRound(2)
	s = tr.Status()
	if s.InRound || s.Round != 2 || s.MeanRound != 10*time.Second {
		t.Fatalf("after the round: %+v", s)
	}
	if got := s.String(); got != "round 2/5 done  run ETA 30s" {
		t.Errorf("after the round: %q", got)
	}
}

// TestStatusLine: output through Writer clears the drawn line first, lines
// are cut to the width, and Stop leaves the line clear.
func TestStatusLine(t *testing.T) {
	var term strings.Builder
	l := NewStatusLine(&term, 12)
	l.draw("round 1/10  step 3/40")
	w := l.Writer(&term)
	w.Write([]byte("round   1/10  fused 0.5\n"))
	w.Write([]byte("more\n"))
	l.draw("round 2/10")
	l.Stop()
	want := "\rround 1/10…\x1b[K" + "\r\x1b[K" + "round   1/10  fused 0.5\n" + "more\n" + "\rround 2/10\x1b[K" + "\r\x1b[K"
	if got := term.String(); got != want {
		t.Errorf("terminal got\n%q\nwant\n%q", got, want)
	}
	var nilLine *StatusLine
	if nilLine.Writer(&term) != &term {
		t.Error("a nil status line wraps its writer")
	}
	nilLine.Start(func() string { return "x" }, time.Second)
	nilLine.Stop()
}
