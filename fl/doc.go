// Package fl is fedcmi's federation core: the messages a server and its
// clients exchange, the client that trains on local data, the strategy that
// samples clients and aggregates their updates, and the round driver.
//
// # Shape
//
// A round is: Strategy.ConfigureFit picks clients and writes their
// instructions; the Server sends them through a Transport; each Client
// trains locally (LocalClient) and returns a FitRes; Strategy.AggregateFit
// merges the results into the next global model; the Server evaluates it
// and reports a metrics.Round. Strategies and clients do no I/O of their
// own, so the same code runs in one process (InmemTransport) and across
// machines: only the Transport differs.
//
// # Methods
//
// FedAvg, FedProx and FedCMI differ in what clients optimise (see Method)
// and share the server side: modality-aware weighted averaging
// (AggregateModalityAware), where each modality's parameters are averaged
// over the sampled clients that hold that modality and the fusion head over
// all of them. OGM-GE (OGMOptions) also only changes local training. Two
// baselines wrap ModalityAware with a strategy of their own: Scaffold
// (control variates, state kept by the strategy and the clients; see
// Stateful and ClientStateful) and Harmony (a unimodal stage on all
// clients, then a fusion stage on multimodal clients).
//
// # Determinism
//
// Every random choice derives from the experiment seed and the round
// number (client sampling) or the round and the client (shuffling), never
// from shared generator state, so a run is reproducible and resumable, and
// the order in which clients finish does not matter.
package fl
