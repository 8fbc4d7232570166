package main

import (
	"context"
	"fmt"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/fedcmi/fedcmi/deploy"
	"github.com/fedcmi/fedcmi/sim"
)

// TestDeployLoad: a coordinator process and 100 participants (goroutines
// of this test, each with its own connection and certificate) complete
// four rounds in which every participant trains. It logs the round
// latencies and the coordinator's memory, read from its /metrics.
func TestDeployLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a federation of 100")
	}
	const n = 100
	f := newFederation(t, fmt.Sprintf(`rounds: 4
clients: %d
clients_per_round: %d
parallel: 1
train:
  epochs: 1
model:
  hidden: [16]
  embed_dim: 16
data:
  partition: iid
  synthetic:
    train_per_class: 100
    test_per_class: 20
`, n, n))
	srv, addr := f.serve(t, "serve", "127.0.0.1:0", nil, "-metrics", "127.0.0.1:0", "-heartbeat", "2s")
	murl := srv.await(t, `metrics endpoint" addr=(\S+)`, 10*time.Second)
	fed, err := sim.Prepare(context.Background(), &f.cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	errs := make(chan error, n)
	for i := range n {
		c, err := fed.Client(i)
		if err != nil {
			t.Fatal(err)
		}
		name := sim.ClientID(i)
		cert, key, _ := deploy.ParticipantFiles(f.certs, name)
		tc, err := deploy.ClientTLS(filepath.Join(f.certs, deploy.CAFile), cert, key, "")
		if err != nil {
			t.Fatal(err)
		}
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(tc)))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		info := fed.Info(i)
		p := &deploy.Participant{
			Conn: conn, Name: name, Token: tokenOf(t, f.certs, name), Client: c,
			ModelModalities: fed.Modalities(),
			Holds:           info.Modalities, NumSamples: info.NumSamples, Layout: fed.Engine.Layout(),
			Logger: discardLogger(),
		}
		go func() { errs <- p.Run(ctx) }()
	}
	srv.await(t, `round   3/4`, 3*time.Minute)
	m := httpGet(t, murl)
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	if err := srv.wait(t, 3*time.Minute); err != nil {
		t.Fatalf("serve: %v", err)
	}
	for range n {
		if err := <-errs; err != nil {
			t.Errorf("participant: %v", err)
		}
	}
	rounds := readRounds(t, filepath.Join(f.dir, "runs", f.cfg.RunName()))
	var lat []string
	for _, r := range rounds {
		if r.Clients != n || r.Failures != 0 {
			t.Errorf("round %d: %d results, %d failures; want %d and 0", r.Round, r.Clients, r.Failures, n)
		}
		lat = append(lat, fmt.Sprintf("%.2fs", r.Seconds))
	}
	t.Logf("%d participants, %d rounds; round latency %s", n, len(rounds), strings.Join(lat, " "))
	t.Logf("coordinator after round 3: resident memory %.1f MiB, Go heap in use %.1f MiB, %s MiB received, %s MiB sent; "+
		"this test process (100 participants) heap in use %.1f MiB",
		metric(t, m, "process_resident_memory_bytes")/(1<<20), metric(t, m, "go_memstats_heap_inuse_bytes")/(1<<20),
		strconv.FormatFloat(metric(t, m, "fedcmi_bytes_received_total")/(1<<20), 'f', 1, 64),
		strconv.FormatFloat(metric(t, m, "fedcmi_bytes_sent_total")/(1<<20), 'f', 1, 64),
		float64(ms.HeapInuse)/(1<<20))
}

// metric reads an unlabelled sample from a Prometheus text exposition.
func metric(t *testing.T, exposition, name string) float64 {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + name + ` (\S+)$`).FindStringSubmatch(exposition)
	if m == nil {
		t.Fatalf("/metrics has no %s", name)
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
