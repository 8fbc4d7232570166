package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fedcmi/fedcmi/config"
	"github.com/fedcmi/fedcmi/deploy"
	"github.com/fedcmi/fedcmi/fl"
	"github.com/fedcmi/fedcmi/internal/fedtest"
	"github.com/fedcmi/fedcmi/metrics"
	"github.com/fedcmi/fedcmi/rundir"
	"github.com/fedcmi/fedcmi/sim"
)

// TestMain lets the tests run this test binary as the fedcmi command
// (FEDCMI_EXEC=1), so coordinator and participants are real processes
// without a separate build. Two variables inject faults into those
// processes: FEDCMI_TEST_HANG_ROUND=r makes a participant hang from round
// r on (to be killed mid-round), FEDCMI_TEST_DIE_AFTER_ROUND=r makes serve
// kill itself right after saving round r.
func TestMain(m *testing.M) {
	if os.Getenv("FEDCMI_EXEC") != "1" {
		os.Exit(m.Run())
	}
	if r, err := strconv.Atoi(os.Getenv("FEDCMI_TEST_HANG_ROUND")); err == nil {
		wrapClient = func(c fl.Client) fl.Client { return hangingClient{c, r} }
	}
	if r, err := strconv.Atoi(os.Getenv("FEDCMI_TEST_DIE_IN_ROUND")); err == nil {
		wrapClient = func(c fl.Client) fl.Client { return dyingClient{c, r} }
	}
	if r, err := strconv.Atoi(os.Getenv("FEDCMI_TEST_DIE_AFTER_ROUND")); err == nil {
		afterRound = func(round int) {
			if round == r {
				fmt.Fprintf(os.Stderr, "test: killing myself after round %d\n", round)
				syscall.Kill(os.Getpid(), syscall.SIGKILL)
				select {}
			}
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

type hangingClient struct {
	fl.Client
	from int
}

func (h hangingClient) Fit(ctx context.Context, ins fl.FitIns) (fl.FitRes, error) {
	if ins.Config.Round >= h.from {
		fmt.Fprintf(os.Stderr, "test: hanging in round %d\n", ins.Config.Round)
		<-ctx.Done()
		return fl.FitRes{}, ctx.Err()
	}
	return h.Client.Fit(ctx, ins)
}

// dyingClient kills its process when asked to train round die.
type dyingClient struct {
	fl.Client
	die int
}

func (d dyingClient) Fit(ctx context.Context, ins fl.FitIns) (fl.FitRes, error) {
	if ins.Config.Round == d.die {
		fmt.Fprintf(os.Stderr, "test: killing myself in round %d\n", d.die)
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {}
	}
	return d.Client.Fit(ctx, ins)
}

// MarshalState and UnmarshalState pass the client's state through.
func (d dyingClient) MarshalState() ([]byte, error) {
	return d.Client.(fl.ClientStateful).MarshalState()
}
func (d dyingClient) UnmarshalState(b []byte) error {
	return d.Client.(fl.ClientStateful).UnmarshalState(b)
}

// proc is a fedcmi process started by a test.
type proc struct {
	cmd  *exec.Cmd
	log  string
	done chan error
}

// start runs `fedcmi args...` as a process logging to dir/name.log.
func start(t *testing.T, dir, name string, env []string, args ...string) *proc {
	t.Helper()
	logPath := filepath.Join(dir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(append(os.Environ(), "FEDCMI_EXEC=1"), env...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, log: logPath, done: make(chan error, 1)}
	go func() { p.done <- cmd.Wait(); f.Close() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-p.done
		p.done <- nil
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("--- %s log:\n%s", name, tail(string(b), 4000))
		}
	})
	return p
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// wait returns the process's exit error, failing the test after timeout.
func (p *proc) wait(t *testing.T, timeout time.Duration) error {
	t.Helper()
	select {
	case err := <-p.done:
		p.done <- err
		return err
	case <-time.After(timeout):
		b, _ := os.ReadFile(p.log)
		t.Fatalf("%v did not finish within %v:\n%s", p.cmd.Args[1:3], timeout, tail(string(b), 3000))
		return nil
	}
}

// await polls the process's log for a match of re and returns its first
// submatch (or the whole match).
func (p *proc) await(t *testing.T, re string, timeout time.Duration) string {
	t.Helper()
	rx := regexp.MustCompile(re)
	end := time.Now().Add(timeout)
	for time.Now().Before(end) {
		b, _ := os.ReadFile(p.log)
		if m := rx.FindSubmatch(b); m != nil {
			return string(m[len(m)-1])
		}
		select {
		case err := <-p.done:
			p.done <- err
			b, _ := os.ReadFile(p.log)
			if m := rx.FindSubmatch(b); m != nil {
				return string(m[len(m)-1])
			}
			t.Fatalf("%v exited (%v) before logging %q:\n%s", p.cmd.Args[1:3], err, re, tail(string(b), 3000))
		case <-time.After(50 * time.Millisecond):
		}
	}
	b, _ := os.ReadFile(p.log)
	t.Fatalf("%v did not log %q within %v:\n%s", p.cmd.Args[1:3], re, timeout, tail(string(b), 3000))
	return ""
}

// federation holds the files of a deployment test.
type federation struct {
	dir, cfgFile, certs string
	cfg                 config.Config
}

// newFederation writes a small experiment and certificates for its clients.
func newFederation(t *testing.T, yml string) *federation {
	t.Helper()
	dir := t.TempDir()
	f := &federation{dir: dir, cfgFile: filepath.Join(dir, "exp.yaml"), certs: filepath.Join(dir, "certs")}
	if err := os.WriteFile(f.cfgFile, []byte(yml), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := loadConfig(f.cfgFile, config.RegisterFlags(newFlagSet(&Command{})))
	if err != nil {
		t.Fatal(err)
	}
	f.cfg = cfg
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"certs", "-out", f.certs, "-hosts", "127.0.0.1", "-participants", strconv.Itoa(cfg.Clients)}, &out, &errb); code != 0 {
		t.Fatalf("certs: exit %d: %s", code, errb.String())
	}
	return f
}

const smallExperiment = `rounds: 3
clients: 4
clients_per_round: 3
parallel: 1
train:
  epochs: 1
model:
  hidden: [16]
  embed_dim: 16
data:
  min_size: 5
  synthetic:
    train_per_class: 20
    test_per_class: 10
`

// serve starts the coordinator and returns it with its address.
func (f *federation) serve(t *testing.T, name, listen string, env []string, extra ...string) (*proc, string) {
	args := append([]string{"serve", "-c", f.cfgFile, "-out_dir", filepath.Join(f.dir, "runs"), "-listen", listen,
		"-certs", f.certs, "-roster", filepath.Join(f.certs, deploy.RosterFile), "-heartbeat", "200ms"}, extra...)
	p := start(t, f.dir, name, env, args...)
	addr := p.await(t, `coordinator listening" addr=(\S+)`, 60*time.Second)
	return p, addr
}

// join starts participant i.
func (f *federation) join(t *testing.T, addr string, i int, env []string) *proc {
	return start(t, f.dir, fmt.Sprintf("client-%d", i), env,
		"join", "-c", f.cfgFile, "-server", addr, "-shard", strconv.Itoa(i), "-certs", f.certs)
}

// simulate runs the experiment in memory.
func (f *federation) simulate(t *testing.T) *sim.Result {
	t.Helper()
	cfg := f.cfg
	cfg.OutDir = filepath.Join(f.dir, "sim")
	res, err := sim.Run(context.Background(), cfg, sim.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func readRounds(t *testing.T, dir string) []metrics.Round {
	t.Helper()
	fh, err := os.Open(filepath.Join(dir, rundir.MetricsJSONL))
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	_, rounds, err := metrics.ReadJSONL(fh)
	if err != nil {
		t.Fatal(err)
	}
	return rounds
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s: %s", url, resp.Status, b)
	}
	return string(b)
}

// TestDeployEqualsSimulation: a coordinator and four participant processes
// on loopback with mutual TLS give the simulation's metrics and final
// model bit for bit; /healthz and /metrics answer.
func TestDeployEqualsSimulation(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	f := newFederation(t, smallExperiment)
	t0 := time.Now()
	srv, addr := f.serve(t, "serve", "127.0.0.1:0", nil, "-metrics", "127.0.0.1:0")
	murl := srv.await(t, `metrics endpoint" addr=(\S+)`, 10*time.Second)
	if got := httpGet(t, strings.TrimSuffix(murl, "/metrics")+"/healthz"); !strings.HasPrefix(got, "ok: waiting for participants before round 1/3") {
		t.Errorf("healthz: %q", got)
	}
	var parts []*proc
	for i := range f.cfg.Clients {
		parts = append(parts, f.join(t, addr, i, nil))
	}
	srv.await(t, `round   2/3`, 60*time.Second)
	if m := httpGet(t, murl); !strings.Contains(m, "fedcmi_participants_connected 4") || !strings.Contains(m, "fedcmi_rounds_total") {
		t.Errorf("/metrics lacks the federation's gauges:\n%s", tail(m, 2000))
	}
	if err := srv.wait(t, 60*time.Second); err != nil {
		t.Fatalf("serve: %v", err)
	}
	for i, p := range parts {
		if err := p.wait(t, 20*time.Second); err != nil {
			t.Errorf("participant %d: %v", i, err)
		}
	}
	t.Logf("deployment of %d rounds took %v", f.cfg.Rounds, time.Since(t0))
	want := f.simulate(t)
	got := filepath.Join(f.dir, "runs", f.cfg.RunName())
	fedtest.SameRounds(t, readRounds(t, got), want.Rounds)
	fedtest.SameModel(t, got, want.Dir)
}

// TestDeployParticipantKilledMidRound: a participant killed while training
// round 2 makes that round close on its deadline with the other results;
// from then on it is no longer sampled.
func TestDeployParticipantKilledMidRound(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	f := newFederation(t, strings.Replace(smallExperiment, "clients_per_round: 3", "clients_per_round: 4", 1))
	srv, addr := f.serve(t, "serve", "127.0.0.1:0", nil, "-round_timeout", "3s")
	for i := range 3 {
		f.join(t, addr, i, nil)
	}
	victim := f.join(t, addr, 3, []string{"FEDCMI_TEST_HANG_ROUND=2"})
	victim.await(t, "test: hanging in round 2", 60*time.Second)
	victim.cmd.Process.Kill()
	if err := srv.wait(t, 60*time.Second); err != nil {
		t.Fatalf("serve: %v", err)
	}
	rounds := readRounds(t, filepath.Join(f.dir, "runs", f.cfg.RunName()))
	if len(rounds) != 3 {
		t.Fatalf("%d rounds, want 3", len(rounds))
	}
	for _, c := range []struct{ round, clients, failures int }{{1, 4, 0}, {2, 3, 1}, {3, 3, 0}} {
		r := rounds[c.round-1]
		if r.Clients != c.clients || r.Failures != c.failures {
			t.Errorf("round %d: %d results and %d failures, want %d and %d", r.Round, r.Clients, r.Failures, c.clients, c.failures)
		}
		if math.IsNaN(r.Heads[0]) {
			t.Errorf("round %d not evaluated", r.Round)
		}
	}
	t.Logf("round 2 (closed on its 3s deadline) took %.2fs, round 1 %.2fs", rounds[1].Seconds, rounds[0].Seconds)
	b, _ := os.ReadFile(srv.log)
	if !bytes.Contains(b, []byte("round deadline passed")) {
		t.Error("serve did not log the deadline failure")
	}
}

// TestDeployResume: the coordinator dies right after round 2; restarted
// with -resume it continues at round 3, the participants reconnect, and
// the final model and metrics equal an uninterrupted run's (the
// simulation's, which the deployment equals). Its strategy state
// (fl.Stateful) must survive: SCAFFOLD's server control variate; the
// server optimizer's moments and the adaptive clip bound of DP-FedAvg
// (whose per-round noise and epsilon must also continue as if never
// interrupted).
func TestDeployResume(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	for _, tc := range []struct{ name, yaml string }{
		{"scaffold", "method: scaffold\n"},
		{"adam with privacy", "method: fedavg\nserver:\n  optimizer: adam\n  lr: 0.01\n" +
			"dp:\n  clip: 1\n  noise_multiplier: 0.5\n  adaptive: true\n  count_std: 1\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFederation(t, tc.yaml+strings.Replace(smallExperiment, "rounds: 3", "rounds: 4", 1))
			srv, addr := f.serve(t, "serve", "127.0.0.1:0", []string{"FEDCMI_TEST_DIE_AFTER_ROUND=2"})
			for i := range f.cfg.Clients {
				f.join(t, addr, i, nil)
			}
			if err := srv.wait(t, 60*time.Second); err == nil {
				t.Fatal("serve finished instead of dying after round 2")
			}
			dir := filepath.Join(f.dir, "runs", f.cfg.RunName())
			fed, err := sim.Prepare(context.Background(), &f.cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			st, err := deploy.LoadState(filepath.Join(dir, deploy.StateFile), &fed.Arch)
			if err != nil {
				t.Fatal(err)
			}
			if st.Round != 2 || len(st.Strategy) == 0 {
				t.Fatalf("state after round %d with %d bytes of strategy state, want round 2 and the strategy's state", st.Round, len(st.Strategy))
			}
			srv2, _ := f.serve(t, "serve-resumed", addr, nil, "-resume")
			srv2.await(t, `msg=resuming .*after_round=2`, 10*time.Second)
			if err := srv2.wait(t, 60*time.Second); err != nil {
				t.Fatalf("resumed serve: %v", err)
			}
			b, _ := os.ReadFile(srv2.log)
			if bytes.Contains(b, []byte("round   1/4")) || !bytes.Contains(b, []byte("round   3/4")) {
				t.Errorf("the resumed coordinator should run rounds 3 and 4 only:\n%s", tail(string(b), 2000))
			}
			want := f.simulate(t)
			fedtest.SameRounds(t, readRounds(t, dir), want.Rounds)
			fedtest.SameModel(t, dir, want.Dir)
		})
	}
}

func tokenOf(t *testing.T, certs, name string) string {
	t.Helper()
	_, _, file := deploy.ParticipantFiles(certs, name)
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// tlsOnlyServer listens on loopback and answers every connection with a
// TLS handshake (as a TLS coordinator does before gRPC), returning its
// address.
func tlsOnlyServer(t *testing.T) string {
	t.Helper()
	certs := filepath.Join(t.TempDir(), "certs")
	if err := deploy.WriteDevCerts(certs, []string{"127.0.0.1"}, nil, time.Hour); err != nil {
		t.Fatal(err)
	}
	tc, err := deploy.ServerTLS(filepath.Join(certs, deploy.CAFile), filepath.Join(certs, deploy.ServerCert), filepath.Join(certs, deploy.ServerKey))
	if err != nil {
		t.Fatal(err)
	}
	tc.ClientAuth = tls.NoClientCert
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				tls.Server(c, tc).Handshake()
			}()
		}
	}()
	return l.Addr().String()
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestDeployUsage(t *testing.T) {
	out := t.TempDir()
	tlsAddr := tlsOnlyServer(t)
	roster := filepath.Join(out, "roster.txt")
	if err := os.WriteFile(roster, []byte("site-a -\nsite-b -\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"help", "serve"}, 0, "-round_timeout"},
		{[]string{"help", "serve"}, 0, "-stuck_after"},
		{[]string{"serve", "-insecure", "-stuck_after", "-1s"}, 2, "-stuck_after"},
		{[]string{"serve", "-insecure", "-max_weight_share", "0"}, 2, "-max_weight_share 0: want a share in (0, 1]"},
		{[]string{"serve", "-insecure", "-max_weight_share", "1.5"}, 2, "-max_weight_share 1.5"},
		{[]string{"serve", "-insecure", "-max_weight_share", "NaN"}, 2, "-max_weight_share NaN"},
		{[]string{"serve", "-insecure", "-max_samples", "-1"}, 2, "-max_samples -1"},
		{[]string{"serve", "-insecure", "-max_message", "1000"}, 2, "-max_message 1000 is below 1114112"},
		{[]string{"join", "-server", "x:1", "-shard", "0", "-max_message", "1000"}, 2, "-max_message 1000 is below"},
		{[]string{"help", "serve"}, 0, "-secagg_threshold"},
		{[]string{"serve", "-insecure", "-secagg_threshold", "3"}, 2, "-secagg_threshold needs -secagg"},
		{[]string{"serve", "-insecure", "-secagg", "-secagg_threshold", "30", "-clients", "20", "-listen", "127.0.0.1:0", "-out_dir", out}, 1,
			"threshold 30 (-secagg_threshold) is larger than the 10 participants of a round"},
		{[]string{"serve", "-insecure", "-secagg", "-method", "scaffold", "-listen", "127.0.0.1:0", "-out_dir", out}, 1, "method: scaffold cannot run under secure aggregation"},
		{[]string{"serve", "-insecure", "-secagg", "-max_weight_share", "0.5", "-listen", "127.0.0.1:0", "-out_dir", out}, 1, "-max_weight_share 0.5 needs each result's weight"},
		{[]string{"help", "join"}, 0, "-secagg"},
		{[]string{"help", "join"}, 0, "-shard i"},
		{[]string{"serve", "-out_dir", out}, 2, "mutual TLS needs -certs"},
		{[]string{"serve", "-insecure", "-certs", out}, 2, "-insecure excludes"},
		{[]string{"serve", "-insecure", "-revoke", "a"}, 2, "-revoke needs -roster"},
		// A typo would revoke nobody: refused before listening (here on an
		// address that cannot be listened on).
		{[]string{"serve", "-insecure", "-roster", roster, "-revoke", "site-a, site_b", "-listen", "127.0.0.1:99999", "-out_dir", out}, 2,
			`-revoke: deploy: cannot revoke "site_b": not a participant of roster ` + roster},
		{[]string{"serve", "-certs", out}, 1, "ca.pem"},
		{[]string{"serve", "-insecure", "-resume", "-listen", "127.0.0.1:0", "-out_dir", out}, 1, "no coordinator state to resume from"},
		{[]string{"join", "-shard", "0"}, 2, "-server is required"},
		{[]string{"join", "-server", "x:1"}, 2, "either -shard or -data"},
		{[]string{"join", "-server", "x:1", "-data", out}, 2, "-data needs -participant"},
		{[]string{"join", "-server", "x:1", "-shard", "0", "-rounds", "1"}, 2, "mutual TLS needs"},
		{[]string{"join", "-server", "x:1", "-shard", "99", "-insecure", "-rounds", "1"}, 1, "shard 99"},
		{[]string{"join", "-server", "127.0.0.1:1", "-shard", "0", "-insecure", "-rounds", "1", "-give_up", "1s"}, 1, "giving up"},
		{[]string{"join", "-server", tlsAddr, "-shard", "0", "-insecure", "-rounds", "1", "-give_up", "10s"}, 1, "the coordinator at " + tlsAddr + " speaks TLS, this participant plain text (-insecure)"},
		{[]string{"certs"}, 2, "-out and -participants are required"},
		{[]string{"certs", "-out", filepath.Join(out, "expired"), "-participants", "2", "-days", "-1"}, 2, "-days -1: the certificates must be valid for 1 to 36500 days"},
		{[]string{"certs", "-out", filepath.Join(out, "expired"), "-participants", "2", "-days", "0"}, 2, "-days 0"},
		{[]string{"certs", "-out", filepath.Join(out, "expired"), "-participants", "2", "-days", "999999999"}, 2, "-days 999999999"},
	} {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), tc.args, &stdout, &stderr)
		all := stdout.String() + stderr.String()
		if code != tc.code || !strings.Contains(all, tc.want) {
			t.Errorf("fedcmi %v: exit %d, want %d; output should contain %q:\n%s", tc.args, code, tc.code, tc.want, tail(all, 1500))
		}
	}
	if _, err := os.Stat(filepath.Join(out, "expired")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused certs command wrote %s (%v)", filepath.Join(out, "expired"), err)
	}
}

// TestDeployParticipantRestart: a SCAFFOLD participant (whose client
// control variate is state, fl.ClientStateful) dies when round 3 reaches
// it; restarted with the same -state file it picks up the round's task and
// the run still equals the simulation.
func TestDeployParticipantRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	f := newFederation(t, "method: scaffold\n"+strings.Replace(strings.Replace(smallExperiment,
		"rounds: 3", "rounds: 4", 1), "clients_per_round: 3", "clients_per_round: 4", 1))
	srv, addr := f.serve(t, "serve", "127.0.0.1:0", nil, "-heartbeat", "2s", "-round_timeout", "60s")
	for i := range 3 {
		f.join(t, addr, i, nil)
	}
	state := filepath.Join(f.dir, "client-3.state")
	args := []string{"join", "-c", f.cfgFile, "-server", addr, "-shard", "3", "-certs", f.certs, "-state", state}
	first := start(t, f.dir, "client-3", []string{"FEDCMI_TEST_DIE_IN_ROUND=3"}, args...)
	if err := first.wait(t, 60*time.Second); err == nil {
		t.Fatal("the participant did not die")
	}
	if _, err := os.Stat(state); err != nil {
		t.Fatalf("no state saved: %v", err)
	}
	start(t, f.dir, "client-3-restarted", nil, args...)
	if err := srv.wait(t, 60*time.Second); err != nil {
		t.Fatalf("serve: %v", err)
	}
	want := f.simulate(t)
	dir := filepath.Join(f.dir, "runs", f.cfg.RunName())
	fedtest.SameRounds(t, readRounds(t, dir), want.Rounds)
	fedtest.SameModel(t, dir, want.Dir)
}
