package deploy

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics are the coordinator's Prometheus metrics, in a registry of
// their own (so tests and several coordinators in one process do not
// collide).
type Metrics struct {
	Registry     *prometheus.Registry
	Rounds       prometheus.Counter
	Connected    prometheus.Gauge
	BytesIn      prometheus.Counter
	BytesOut     prometheus.Counter
	Rejections   *prometheus.CounterVec
	RoundSeconds prometheus.Histogram
	// TLSRefusals counts failed TLS handshakes by reason: not_tls,
	// no_certificate, bad_certificate, peer_refused, aborted, other.
	TLSRefusals *prometheus.CounterVec
	// WeightCapped counts results whose aggregation weight was lowered to
	// the largest share of a round one participant may take.
	WeightCapped prometheus.Counter
	// SecAggBytes counts the bytes of secure aggregation's key and
	// unmasking messages, by direction (in, out); masked inputs count in
	// BytesIn. SecAggRounds counts its rounds by outcome (completed,
	// failed).
	SecAggBytes  *prometheus.CounterVec
	SecAggRounds *prometheus.CounterVec
}

// NewMetrics returns the coordinator's metrics, registered with the Go
// runtime and process collectors.
func NewMetrics() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		Rounds: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "fedcmi_rounds_total", Help: "Rounds completed by the coordinator."}),
		Connected: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "fedcmi_participants_connected", Help: "Registered participants whose heartbeats are current."}),
		BytesIn: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "fedcmi_bytes_received_total", Help: "Tensor bytes received from participants."}),
		BytesOut: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "fedcmi_bytes_sent_total", Help: "Tensor bytes sent to participants."}),
		Rejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fedcmi_update_rejections_total", Help: "Updates or registrations refused, by reason."}, []string{"reason"}),
		RoundSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "fedcmi_round_duration_seconds", Help: "Wall time of a round: sending, training, aggregation and evaluation.",
			Buckets: prometheus.ExponentialBuckets(0.05, 2, 16)}),
		TLSRefusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fedcmi_tls_handshake_failures_total", Help: "Connections refused at the TLS handshake (before any registration), by reason."}, []string{"reason"}),
		WeightCapped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "fedcmi_weight_capped_total", Help: "Results whose aggregation weight was capped at the largest share of a round one participant may take."}),
		SecAggBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fedcmi_secagg_bytes_total", Help: "Bytes of secure aggregation's key and unmasking messages, by direction."}, []string{"direction"}),
		SecAggRounds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fedcmi_secagg_rounds_total", Help: "Secure aggregation rounds, by outcome (completed, failed)."}, []string{"outcome"}),
	}
	m.Registry.MustRegister(m.Rounds, m.Connected, m.BytesIn, m.BytesOut, m.Rejections, m.RoundSeconds, m.TLSRefusals, m.WeightCapped, m.SecAggBytes, m.SecAggRounds,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// ServeHTTP serves /metrics and /healthz on l until ctx is done. health
// says how the coordinator is (nil: always "ok"): /healthz answers 200
// with its line, or 503 with its error.
func (m *Metrics) ServeHTTP(ctx context.Context, l net.Listener, health func() (string, error), log *slog.Logger) error {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		line := "ok"
		if health != nil {
			var err error
			if line, err = health(); err != nil {
				http.Error(w, err.Error(), http.StatusServiceUnavailable)
				return
			}
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte(line + "\n"))
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		shut, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(shut)
	}()
	log.Info("metrics endpoint", "addr", "http://"+l.Addr().String()+"/metrics")
	if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
