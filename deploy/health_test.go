package deploy

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fedcmi/fedcmi/fl"
)

// TestHealthCheck pins /healthz's answer for every phase of a run, with
// and without recent progress.
func TestHealthCheck(t *testing.T) {
	t0 := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name     string
		phase    string
		round    int
		err      error
		idle     time.Duration // since the phase began
		progress time.Duration // since the coordinator's last progress (0: none in the phase)
		want     string        // the line, or the error's text
		ok       bool
	}{
		{"before set", "", 0, nil, 0, 0, "starting", false},
		{"joining", phaseJoining, 1, nil, time.Second, 0, "ok: waiting for participants before round 1/5 (2 connected, 4 needed)", true},
		{"joining for hours", phaseJoining, 3, nil, 5 * time.Hour, 0, "ok: waiting for participants before round 3/5", true},
		{"waiting between rounds", phaseWaiting, 2, nil, time.Minute, 0, "ok: waiting for participants before round 2/5", true},
		{"waiting too long between rounds", phaseWaiting, 2, nil, 11 * time.Minute, 0,
			"stuck: waiting for participants before round 2/5 (2 connected, 4 needed) made no progress for 11m0s (limit 10m0s)", false},
		{"round", phaseRound, 3, nil, 4 * time.Minute, 2 * time.Second, "ok: round 3/5 in progress, last progress 2s ago", true},
		{"long round with progress", phaseRound, 3, nil, time.Hour, 9 * time.Minute, "ok: round 3/5 in progress, last progress 9m0s ago", true},
		{"stuck round", phaseRound, 3, nil, time.Hour, 15 * time.Minute, "stuck: round 3/5 made no progress for 15m0s (limit 10m0s)", false},
		{"stuck round without any progress", phaseRound, 4, nil, 12 * time.Minute, 0, "stuck: round 4/5 made no progress for 12m0s", false},
		{"finished", phaseFinished, 5, nil, time.Hour, time.Hour, "ok: finished, all 5 rounds done", true},
		{"failed", phaseFailed, 4, errors.New("disk full"), time.Second, 0, "failed in round 4: disk full", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now := t0
			h := &health{
				stuckAfter: 10 * time.Minute, rounds: 5,
				progress: func() time.Time {
					if tc.progress == 0 {
						return time.Time{}
					}
					return t0.Add(-tc.progress)
				},
				connected: func() int { return 2 },
				now:       func() time.Time { return now },
			}
			if tc.phase != "" {
				now = t0.Add(-tc.idle)
				h.set(tc.phase, tc.round, 4, tc.err)
				now = t0
			}
			line, err := h.check()
			got := line
			if err != nil {
				got = err.Error()
			}
			if (err == nil) != tc.ok || !strings.Contains(got, tc.want) {
				t.Errorf("check = %q, %v; want ok %v and %q", line, err, tc.ok, tc.want)
			}
		})
	}
}

// hangingClient trains round hang until its context ends.
type hangingClient struct {
	fl.Client
	hang    int
	started chan struct{}
}

func (h hangingClient) Fit(ctx context.Context, ins fl.FitIns) (fl.FitRes, error) {
	if ins.Config.Round == h.hang {
		close(h.started)
		<-ctx.Done()
		return fl.FitRes{}, ctx.Err()
	}
	return h.Client.Fit(ctx, ins)
}

// TestHealthzOverHTTP: a served run's /healthz says it waits for
// participants, then that round 1 is in progress, and answers 503 naming
// the round once its only participant hangs for longer than StuckAfter.
func TestHealthzOverHTTP(t *testing.T) {
	cfg := smallConfig(t, 1, 1, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	l, hl := listen(t), listen(t)
	url := "http://" + hl.Addr().String() + "/healthz"
	done := serve(ctx, cfg, ServeOptions{Listener: l, HTTPListener: hl, Insecure: true, HeartbeatInterval: 200 * time.Millisecond,
		PollTimeout: time.Second, RoundTimeout: time.Minute, StuckAfter: 1500 * time.Millisecond})
	get := func() (int, string) {
		t.Helper()
		for range 50 { // the endpoint starts with the coordinator
			resp, err := http.Get(url)
			if err != nil {
				time.Sleep(100 * time.Millisecond)
				continue
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			return resp.StatusCode, string(b)
		}
		t.Fatalf("no answer from %s", url)
		return 0, ""
	}
	if code, body := get(); code != 200 || !strings.HasPrefix(body, "ok: waiting for participants before round 1/2 (0 connected, 1 needed)") {
		t.Errorf("before participants: %d %q", code, body)
	}
	started := make(chan struct{})
	parts := shardParticipant(ctx, t, cfg, 0, l.Addr().String(), nil, "", func(c fl.Client) fl.Client {
		return hangingClient{c, 1, started}
	})
	<-started
	if code, body := get(); code != 200 || !strings.HasPrefix(body, "ok: round 1/2 in progress") {
		t.Errorf("in round 1: %d %q", code, body)
	}
	end := time.Now().Add(10 * time.Second)
	code, body := get()
	for code == 200 && time.Now().Before(end) {
		time.Sleep(100 * time.Millisecond)
		code, body = get()
	}
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "stuck: round 1/2 made no progress") {
		t.Errorf("a hanging round: %d %q", code, body)
	}
	cancel()
	<-done
	<-parts
}
