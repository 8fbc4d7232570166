package fl

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/fedcmi/fedcmi/metrics"
	"github.com/fedcmi/fedcmi/model"
)

// Server drives federated rounds: it asks the strategy for instructions,
// sends them through the transport, hands the results back to the strategy,
// evaluates the new global model and reports the round.
type Server struct {
	// Strategy and Transport are required.
	Strategy  Strategy
	Transport Transport
	// Clients lists the registered clients.
	Clients []ClientInfo
	// Evaluate measures a global model centrally (on the server's test
	// set); nil skips evaluation (accuracies are NaN).
	Evaluate func(ctx context.Context, global model.Params) (Evaluation, error)
	// OnRound is called after every completed round with its metrics and
	// the new global model (to save them). An error stops the run.
	OnRound func(r metrics.Round, global model.Params) error
	// AllowEmptyRounds keeps going, with the previous global model, after a
	// round without any usable result; by default such a round stops the
	// run with an error (in a simulation it means every sampled client
	// failed, e.g. diverged, and the metrics would be meaningless).
	AllowEmptyRounds bool
	// Parallelism is the number of clients trained at once (default 1).
	// Results do not depend on it.
	Parallelism int
	// Logger receives progress; nil uses slog.Default().
	Logger *slog.Logger
}

// Run runs rounds first..last (1-based, inclusive) from global and returns
// the last global model. On cancellation it returns the model of the last
// completed round together with the context's error.
func (s *Server) Run(ctx context.Context, global model.Params, first, last int) (model.Params, error) {
	if s.Strategy == nil || s.Transport == nil {
		return nil, errors.New("fl: server needs a strategy and a transport")
	}
	log := s.Logger
	if log == nil {
		log = slog.Default()
	}
	heads := model.NumHeads(paramModalities(global))
	start := time.Now()
	for round := first; round <= last; round++ {
		if err := ctx.Err(); err != nil {
			return global, err
		}
		t0 := time.Now()
		ins, err := s.Strategy.ConfigureFit(round, global, s.Clients)
		if err != nil {
			return global, fmt.Errorf("fl: round %d: configure: %w", round, err)
		}
		results, failures := s.fitAll(ctx, ins)
		if err := ctx.Err(); err != nil {
			return global, err // a round cut short is not aggregated
		}
		for _, f := range failures {
			log.Warn("client failed", "round", round, "client", f.ClientID, "err", f.Err)
		}
		next, err := s.Strategy.AggregateFit(round, global, results, failures)
		if err != nil {
			return global, fmt.Errorf("fl: round %d: aggregate: %w", round, err)
		}
		if next == nil {
			if !s.AllowEmptyRounds {
				err := fmt.Errorf("fl: round %d: no usable result from %d clients", round, len(ins))
				if len(failures) > 0 {
					err = fmt.Errorf("%w (%d failed; %s: %w)", err, len(failures), failures[0].ClientID, failures[0].Err)
				}
				return global, err
			}
			log.Warn("round kept the previous model: no usable result", "round", round)
		} else {
			global = next
		}
		m := roundMetrics(round, results, failures, heads)
		if s.Evaluate != nil {
			ev, err := s.Evaluate(ctx, global)
			if err != nil {
				return global, fmt.Errorf("fl: round %d: evaluate: %w", round, err)
			}
			m.Heads = ev.Heads[:]
			m.PerClass = ev.PerClass
		}
		m.Seconds = time.Since(t0).Seconds()
		m.Elapsed = time.Since(start).Seconds()
		if s.OnRound != nil {
			if err := s.OnRound(m, global); err != nil {
				return global, fmt.Errorf("fl: round %d: %w", round, err)
			}
		}
	}
	return global, nil
}

// fitAll runs the instructions with up to Parallelism at once and returns
// the results in instruction order, so aggregation is deterministic.
func (s *Server) fitAll(ctx context.Context, ins []Instruction) ([]Result, []Failure) {
	type outcome struct {
		res FitRes
		err error
	}
	out := make([]outcome, len(ins))
	par := max(s.Parallelism, 1)
	sem := make(chan struct{}, par)
	var wg sync.WaitGroup
	for i, in := range ins {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			res, err := s.Transport.Fit(ctx, in.ClientID, in.Ins)
			out[i] = outcome{res, err}
		}()
	}
	wg.Wait()
	declared := make(map[string]ClientInfo, len(s.Clients))
	for _, c := range s.Clients {
		declared[c.ID] = c
	}
	var results []Result
	var failures []Failure
	for i, o := range out {
		id := ins[i].ClientID
		if o.err == nil {
			o.err = beyondDeclared(declared[id], o.res)
		}
		if o.err != nil {
			failures = append(failures, Failure{ClientID: id, Err: o.err})
			continue
		}
		results = append(results, Result{ClientID: id, Res: o.res})
	}
	return results, failures
}

// beyondDeclared is the error of a result that trained modalities or
// samples beyond what its client declared when the round sampled it (a
// deployed participant that registered again mid-round, say): the
// strategy counted the round's clients by their declarations, and weighs
// and normalises by them. What a client did not declare (a client the
// round did not list, no modalities, no samples) is not checked.
func beyondDeclared(info ClientInfo, res FitRes) error {
	if info.Modalities != 0 && res.Modalities&^info.Modalities != 0 {
		return fmt.Errorf("fl: the result trains modalities %08b, beyond the %08b the client declared when sampled", uint8(res.Modalities), uint8(info.Modalities))
	}
	if info.NumSamples > 0 && res.NumSamples > info.NumSamples {
		return fmt.Errorf("fl: the result claims %d samples, beyond the %d the client declared when sampled", res.NumSamples, info.NumSamples)
	}
	return nil
}

// paramModalities counts the modalities of a model from its parameter
// names ("<modality>/...", "fusion/..."); at least 2.
func paramModalities(p model.Params) int {
	seen := map[string]bool{}
	for _, t := range p {
		if name, _, ok := strings.Cut(t.Name, "/"); ok && name != model.PartFusion {
			seen[name] = true
		}
	}
	return max(2, len(seen))
}

// roundMetrics condenses the clients' training measurements.
// Accuracies are NaN, one per head of heads, until evaluated.
func roundMetrics(round int, results []Result, failures []Failure, heads int) metrics.Round {
	var loss, rho, first float64
	var batches, rhoBatches int
	for _, r := range results {
		m := r.Res.Metrics
		loss += m.LossSum
		batches += m.Batches
		rho += m.RhoSum
		rhoBatches += m.RhoBatches
		first += m.FirstDominant
	}
	nan := math.NaN()
	out := metrics.Round{
		Round: round, TrainLoss: nan, Dominance: nan, FirstDominant: nan,
		Clients: len(results), Failures: len(failures),
		Heads: make([]float64, heads),
	}
	for h := range out.Heads {
		out.Heads[h] = nan
	}
	if batches > 0 {
		out.TrainLoss = loss / float64(batches)
	}
	if rhoBatches > 0 {
		out.Dominance = rho / float64(rhoBatches)
		out.FirstDominant = first / float64(rhoBatches)
	}
	return out
}
