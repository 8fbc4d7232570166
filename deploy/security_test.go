package deploy

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/fedcmi/fedcmi/config"
	"github.com/fedcmi/fedcmi/fl"
	"github.com/fedcmi/fedcmi/internal/fedcmipb"
	"github.com/fedcmi/fedcmi/model"
	"github.com/fedcmi/fedcmi/sim"
)

// testCoordinator serves a coordinator for the small config's model on
// loopback and returns it with its address.
func testCoordinator(t *testing.T, cc CoordinatorConfig, tc *tls.Config) (*Coordinator, string) {
	t.Helper()
	cfg := smallConfig(t, 4, 4, 1)
	fed, err := sim.Prepare(context.Background(), &cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	cc.Layout = fed.Engine.Layout()
	cc.Modalities = fed.Modalities()
	cc.Insecure = tc == nil
	if cc.HeartbeatInterval == 0 {
		cc.HeartbeatInterval = 200 * time.Millisecond
	}
	if cc.PollTimeout == 0 {
		cc.PollTimeout = 500 * time.Millisecond
	}
	c, err := NewCoordinator(cc)
	if err != nil {
		t.Fatal(err)
	}
	var opts []grpc.ServerOption
	if tc != nil {
		opts = append(opts, grpc.Creds(c.ServerCredentials(tc)))
	}
	gs := grpc.NewServer(opts...)
	RegisterService(gs, c)
	l := listen(t)
	go gs.Serve(l)
	t.Cleanup(gs.Stop)
	return c, l.Addr().String()
}

// devCerts writes a CA with certificates for names into a new directory.
func devCerts(t *testing.T, names ...string) string {
	t.Helper()
	dir := t.TempDir()
	if err := WriteDevCerts(dir, []string{"127.0.0.1"}, names, time.Hour); err != nil {
		t.Fatal(err)
	}
	return dir
}

// serverTLS is the coordinator's TLS configuration from the certificates
// in dir (devCerts).
func serverTLS(t testing.TB, dir string) *tls.Config {
	t.Helper()
	tc, err := ServerTLS(filepath.Join(dir, CAFile), filepath.Join(dir, ServerCert), filepath.Join(dir, ServerKey))
	if err != nil {
		t.Fatal(err)
	}
	return tc
}

func clientTLS(t *testing.T, caDir, certDir, name string) *tls.Config {
	t.Helper()
	cert, key := "", ""
	if certDir != "" {
		cert, key, _ = ParticipantFiles(certDir, name)
	}
	tc, err := ClientTLS(filepath.Join(caDir, CAFile), cert, key, "")
	if err != nil {
		t.Fatal(err)
	}
	return tc
}

// TestRefused: participants the coordinator must not accept are refused,
// and Participant.Run reports it instead of retrying.
func TestRefused(t *testing.T) {
	good := devCerts(t, "client-0000", "client-0001", "client-0002", "stranger")
	other := devCerts(t, "client-0000")
	stls := serverTLS(t, good)
	roster, err := ParseRoster(strings.NewReader("client-0000 secret\nclient-0001 -\nclient-0002 - revoked\n"), "test")
	if err != nil {
		t.Fatal(err)
	}
	cfg := smallConfig(t, 4, 4, 1)
	loc, err := ShardLocal(context.Background(), &cfg, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	coord, addr := testCoordinator(t, CoordinatorConfig{Roster: roster}, stls)
	otherLayout := append([]model.ParamInfo(nil), loc.Layout...)
	otherLayout[0].Shape = []int{1, 2}
	for _, tc := range []struct {
		name   string
		tls    *tls.Config
		as     string // participant name
		token  string
		layout []model.ParamInfo
		want   string // in the error
	}{
		{"certificate of another CA", clientTLS(t, good, other, "client-0000"), "client-0000", "secret", nil, "certificate"},
		{"trusting another CA", clientTLS(t, other, other, "client-0000"), "client-0000", "secret", nil, "certificate"},
		{"no certificate", clientTLS(t, good, "", ""), "client-0000", "secret", nil, "certificate"},
		{"wrong token", clientTLS(t, good, good, "client-0000"), "client-0000", "guess", nil, "wrong token"},
		{"revoked", clientTLS(t, good, good, "client-0002"), "client-0002", "", nil, "revoked"},
		{"unknown name", clientTLS(t, good, good, "stranger"), "stranger", "", nil, "not on the roster"},
		{"name of another certificate", clientTLS(t, good, good, "client-0001"), "client-0000", "secret", nil, "presents the certificate"},
		{"another model", clientTLS(t, good, good, "client-0000"), "client-0000", "secret", otherLayout, "another model"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := loc.Participant(dial(t, addr, tc.tls))
			p.Name, p.Token = tc.as, tc.token
			if tc.layout != nil {
				p.Layout = tc.layout
			}
			// With TLS 1.3 a refused client certificate may first show as
			// a broken connection; retry quickly until the alert is read.
			p.MinBackoff, p.MaxBackoff = 20*time.Millisecond, 200*time.Millisecond
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			err := p.Run(ctx)
			if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Run: %v; want refused with %q", err, tc.want)
			}
		})
	}
	if n := len(coord.Available()); n != 0 {
		t.Errorf("%d participants registered", n)
	}
	// The right credentials are accepted (so the refusals above are not
	// a broken setup).
	rpc := fedcmipb.NewFederationClient(dial(t, addr, clientTLS(t, good, good, "client-0000")))
	req := &fedcmipb.RegisterRequest{ProtocolVersion: ProtocolVersion, Name: "client-0000", Token: "secret",
		Modalities: []string{"audio"}, NumSamples: 10, LayoutDigest: LayoutDigest(loc.Layout)}
	if _, err := rpc.Register(context.Background(), req); err != nil {
		t.Fatalf("right credentials refused: %v", err)
	}
	// Another protocol version is refused with a message naming both.
	req.ProtocolVersion = ProtocolVersion + 1
	_, err = rpc.Register(context.Background(), req)
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), fmt.Sprintf("protocol version mismatch: participant speaks %d, coordinator speaks %d", ProtocolVersion+1, ProtocolVersion)) {
		t.Errorf("another protocol version: %v", err)
	}
}

// TestRegistrationRate: registrations beyond the rate are refused.
func TestRegistrationRate(t *testing.T) {
	_, addr := testCoordinator(t, CoordinatorConfig{RegisterRate: 0.001, RegisterBurst: 2}, nil)
	rpc := fedcmipb.NewFederationClient(dial(t, addr, nil))
	var codesSeen []codes.Code
	for range 3 {
		_, err := rpc.Register(context.Background(), &fedcmipb.RegisterRequest{ProtocolVersion: ProtocolVersion, Name: "x"})
		codesSeen = append(codesSeen, status.Code(err))
	}
	// The first two fail later checks (no layout), the third is rate-limited.
	if codesSeen[0] == codes.ResourceExhausted || codesSeen[2] != codes.ResourceExhausted {
		t.Errorf("codes %v; want the third ResourceExhausted", codesSeen)
	}
}

// badClient corrupts the results of an honest client.
type badClient struct {
	fl.Client
	corrupt func(*fl.FitRes)
}

func (b badClient) Fit(ctx context.Context, ins fl.FitIns) (fl.FitRes, error) {
	res, err := b.Client.Fit(ctx, ins)
	if err == nil {
		b.corrupt(&res)
	}
	return res, err
}

// TestBadUpdatesRejected: NaN weights, a wrong shape, an oversized message,
// more samples than declared, an update beyond the norm bound, and
// metrics or a report that do not validate (an infinite loss, class
// statistics of other classes, NaN prototypes of the wrong shape with a
// negative count) are each rejected (and counted), and every round
// completes with the honest participant's result.
func TestBadUpdatesRejected(t *testing.T) {
	cfg := smallConfig(t, 9, 9, 2)
	met := NewMetrics()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	l, done := guardedServer(ctx, t, cfg, met)
	corrupt := []func(*fl.FitRes){
		nil, // honest
		func(r *fl.FitRes) { r.Params[0].Data[3] = float32(math.NaN()) },
		func(r *fl.FitRes) { r.Params[1].Shape = []int{len(r.Params[1].Data), 1} },
		func(r *fl.FitRes) { // 12 MiB in one tensor, sent as one message
			r.Params[0].Data = make([]float32, 3<<20)
			r.Params[0].Shape = []int{len(r.Params[0].Data)}
		},
		func(r *fl.FitRes) { r.NumSamples *= 10 },
		func(r *fl.FitRes) { r.Params[0].Data[0] += 1e4 },
		func(r *fl.FitRes) { r.Metrics.LossSum = math.Inf(-1) },
		func(r *fl.FitRes) { cs := fl.NewClassStats(2, 50); r.Metrics.FedCMI.ClassStats = &cs },
		func(r *fl.FitRes) {
			r.Metrics.Report = &fl.MDropReport{Selection: &fl.ModalityReport{Prototypes: fl.PrototypeSet{
				Centers: [2][]float32{{float32(math.NaN())}}, Counts: [2][]int{{-1}},
			}}}
		},
	}
	var parts []<-chan error
	for i, c := range corrupt {
		wrap := func(cl fl.Client) fl.Client { return cl }
		if c != nil {
			wrap = func(cl fl.Client) fl.Client { return badClient{cl, c} }
		}
		if i == 3 { // the oversized one sends its tensor in one piece
			loc, err := ShardLocal(ctx, &cfg, i, nil)
			if err != nil {
				t.Fatal(err)
			}
			p := loc.Participant(dial(t, l.Addr().String(), nil))
			p.Client, p.ChunkBytes = wrap(loc.Client), 64<<20
			ch := make(chan error, 1)
			go func() { ch <- p.Run(ctx) }()
			parts = append(parts, ch)
			continue
		}
		parts = append(parts, shardParticipant(ctx, t, cfg, i, l.Addr().String(), nil, "", wrap))
	}
	res := federated(t, done, parts)
	for _, r := range res.Rounds {
		if r.Clients != 1 || r.Failures != 8 || math.IsNaN(r.Heads[0]) || math.IsNaN(r.TrainLoss) {
			t.Errorf("round %d: %d results, %d failures, loss %v; want 1 and 8, finite", r.Round, r.Clients, r.Failures, r.TrainLoss)
		}
	}
	if len(res.Rounds) != cfg.Rounds {
		t.Errorf("%d rounds, want %d", len(res.Rounds), cfg.Rounds)
	}
	for reason, n := range map[string]int{"values": 1, "tensor": 1, "size": 1, "samples": 1, "norm": 1, "metrics": 3} {
		if got := counterValue(t, met, "fedcmi_update_rejections_total", reason); got != float64(n*cfg.Rounds) {
			t.Errorf("%s rejections: %v, want %d", reason, got, n*cfg.Rounds)
		}
	}
}

// TestControlDeltaBounded: under SCAFFOLD, a participant whose control
// variate change is finite but far beyond what an update within the norm
// bound can give is rejected ("norm"), and the others keep training: its
// change would otherwise poison the server's control variate, which every
// client adds to its gradients.
func TestControlDeltaBounded(t *testing.T) {
	cfg := smallConfig(t, 3, 3, 3)
	cfg.Method = "scaffold"
	met := NewMetrics()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	l, done := guardedServer(ctx, t, cfg, met)
	var parts []<-chan error
	for i := range 3 {
		var wrap func(fl.Client) fl.Client
		if i == 2 {
			wrap = func(cl fl.Client) fl.Client {
				return badClient{cl, func(r *fl.FitRes) {
					for _, tns := range r.ControlDelta {
						for j := range tns.Data {
							tns.Data[j] = 3e38
						}
					}
				}}
			}
		}
		parts = append(parts, shardParticipant(ctx, t, cfg, i, l.Addr().String(), nil, "", wrap))
	}
	res := federated(t, done, parts)
	for _, r := range res.Rounds {
		if r.Clients != 2 || r.Failures != 1 || math.IsNaN(r.TrainLoss) {
			t.Errorf("round %d: %d results, %d failures, loss %v; want 2 and 1, finite", r.Round, r.Clients, r.Failures, r.TrainLoss)
		}
	}
	if got := counterValue(t, met, "fedcmi_update_rejections_total", "norm"); got != float64(cfg.Rounds) {
		t.Errorf("norm rejections: %v, want %d", got, cfg.Rounds)
	}
}

// guardedServer serves cfg in the background with a norm bound of 1e3,
// its counters in met, for the tests of rejected updates.
func guardedServer(ctx context.Context, t *testing.T, cfg config.Config, met *Metrics) (net.Listener, <-chan served) {
	l := listen(t)
	return l, serve(ctx, cfg, ServeOptions{Listener: l, Insecure: true, Metrics: met, NormBound: 1e3,
		HeartbeatInterval: 200 * time.Millisecond, PollTimeout: time.Second, RoundTimeout: 30 * time.Second})
}

// counterValue reads a counter of the metrics by its reason label.
func counterValue(t *testing.T, m *Metrics, name, reason string) float64 {
	t.Helper()
	fams, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, mt := range f.GetMetric() {
			for _, lp := range mt.GetLabel() {
				if lp.GetName() == "reason" && lp.GetValue() == reason {
					return mt.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// syncBuffer is a bytes.Buffer safe for a logger and a test at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestTLSRefusalsLoggedAndCounted: connections refused at the TLS
// handshake, before any registration, are logged with the remote address
// and counted by reason: a certificate of another CA, no certificate, a
// plain-text client, a client that does not trust the coordinator.
func TestTLSRefusalsLoggedAndCounted(t *testing.T) {
	good := devCerts(t, "client-0000")
	other := devCerts(t, "client-0000")
	stls := serverTLS(t, good)
	met := NewMetrics()
	var logs syncBuffer
	_, addr := testCoordinator(t, CoordinatorConfig{Metrics: met, Logger: slog.New(slog.NewTextHandler(&logs, nil))}, stls)
	for _, tc := range []struct {
		name   string
		tls    *tls.Config // nil: plain text
		reason string
	}{
		{"certificate of another CA", clientTLS(t, good, other, "client-0000"), "bad_certificate"},
		{"no certificate", clientTLS(t, good, "", ""), "no_certificate"},
		{"plain text", nil, "not_tls"},
		{"trusting another CA", clientTLS(t, other, other, "client-0000"), "peer_refused"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := tlsRefusals(t, met, tc.reason)
			rpc := fedcmipb.NewFederationClient(dial(t, addr, tc.tls))
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_, err := rpc.Register(ctx, &fedcmipb.RegisterRequest{ProtocolVersion: ProtocolVersion, Name: "client-0000"})
			cancel()
			if err == nil {
				t.Fatal("registered")
			}
			t.Logf("participant sees: %v", err)
			end := time.Now().Add(5 * time.Second)
			for tlsRefusals(t, met, tc.reason) == before && time.Now().Before(end) {
				time.Sleep(20 * time.Millisecond)
			}
			if got := tlsRefusals(t, met, tc.reason); got <= before {
				t.Errorf("%s handshake failures %v, want more than %v", tc.reason, got, before)
			}
			if want := "reason=" + tc.reason; !strings.Contains(logs.String(), want) || !strings.Contains(logs.String(), "remote=127.0.0.1:") {
				t.Errorf("the log lacks %q with the remote address:\n%s", want, logs.String())
			}
		})
	}
}

// tlsRefusals reads fedcmi_tls_handshake_failures_total for reason.
func tlsRefusals(t *testing.T, m *Metrics, reason string) float64 {
	t.Helper()
	return counterValue(t, m, "fedcmi_tls_handshake_failures_total", reason)
}

// TestWrongTransport: a plain-text participant facing a TLS coordinator,
// and a TLS participant facing a plain-text one, give up with a message
// saying which side speaks what, instead of retrying for ever: at once
// with the coordinator's address to probe, else after a few connections
// closed before the server preface.
func TestWrongTransport(t *testing.T) {
	certs := devCerts(t, "client-0000")
	stls := serverTLS(t, certs)
	_, tlsAddr := testCoordinator(t, CoordinatorConfig{}, stls)
	_, plainAddr := testCoordinator(t, CoordinatorConfig{}, nil)
	cfg := smallConfig(t, 4, 4, 1)
	loc, err := ShardLocal(context.Background(), &cfg, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		addr     string
		tls      *tls.Config
		probe    bool
		want     string
		maxTries time.Duration
	}{
		{"plain text to TLS, probed", tlsAddr, nil, true, "speaks TLS, this participant plain text", 2 * time.Second},
		{"plain text to TLS, counted", tlsAddr, nil, false, "probably speaks TLS", 5 * time.Second},
		{"TLS to plain text", plainAddr, clientTLS(t, certs, certs, "client-0000"), false, "the coordinator speaks plain text", 2 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := loc.Participant(dial(t, tc.addr, tc.tls))
			p.Name, p.Plaintext = "client-0000", tc.tls == nil
			p.MinBackoff, p.MaxBackoff = 20*time.Millisecond, 200*time.Millisecond
			if tc.probe {
				p.Address = tc.addr
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			t0 := time.Now()
			err := p.Run(ctx)
			if !errors.Is(err, ErrWrongTransport) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Run: %v; want ErrWrongTransport saying %q", err, tc.want)
			}
			if d := time.Since(t0); d > tc.maxTries {
				t.Errorf("gave up after %v, want within %v", d, tc.maxTries)
			}
			t.Log(err)
		})
	}
}

// TestPlainTextJoinCountedOnce: a plain-text participant that gives up on
// a TLS coordinator (its registration refused as not TLS, then a TLS probe
// to tell the operator why) is one failed attempt, counted once as
// not_tls; the probe, which presents no certificate, is not counted again
// as no_certificate.
func TestPlainTextJoinCountedOnce(t *testing.T) {
	certs := devCerts(t, "client-0000")
	stls := serverTLS(t, certs)
	met := NewMetrics()
	var logs syncBuffer
	_, addr := testCoordinator(t, CoordinatorConfig{Metrics: met, Logger: slog.New(slog.NewTextHandler(&logs, nil))}, stls)
	cfg := smallConfig(t, 4, 4, 1)
	loc, err := ShardLocal(context.Background(), &cfg, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	conn := dial(t, addr, nil)
	p := loc.Participant(conn)
	p.Name, p.Plaintext, p.Address = "client-0000", true, addr
	p.MinBackoff, p.MaxBackoff = 20*time.Millisecond, 200*time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := p.Run(ctx); !errors.Is(err, ErrWrongTransport) {
		t.Fatalf("Run: %v; want ErrWrongTransport", err)
	}
	conn.Close() // no reconnection in the background
	reasons := []string{tlsNotTLS, tlsNoCertificate, tlsBadCert, tlsPeerRefused, tlsAborted, tlsOther}
	counts := func() map[string]float64 {
		m := map[string]float64{}
		for _, r := range reasons {
			if v := tlsRefusals(t, met, r); v > 0 {
				m[r] = v
			}
		}
		return m
	}
	// The server counts after the client has its answer: wait for the
	// count, then long enough for a second one to show.
	end := time.Now().Add(5 * time.Second)
	for len(counts()) == 0 && time.Now().Before(end) {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond)
	if got, want := counts(), map[string]float64{tlsNotTLS: 1}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("handshake failures by reason %v, want %v; log:\n%s", got, want, logs.String())
	}
}
