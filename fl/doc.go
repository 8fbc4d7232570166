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
// A method is one entry of the registry (Method, LookupMethod,
// CheckConfig) and its own file. FedAvg, FedProx, FedCMI and its variants
// are settings of the shared FedCMI recipe (FedCMIFit) and share the
// server side, modality-aware weighted averaging (ModalityAware,
// AggregateModalityAware): each modality's parameters are averaged over
// the sampled clients that hold that modality and the fusion head over
// all of them. The baselines (SCAFFOLD, OGM-GE, Harmony, PMR, FedMDrop,
// fedgb, fedrelearn) wrap ModalityAware in a Strategy of their own
// (Method.Server), which sends each client the method's Recipe
// (FitConfig.Recipe); the recipe gives the client's share of the round
// (round hooks, round.go), and the client answers with the method's
// Report (FitMetrics.Report). State kept across rounds by a strategy or
// its clients is checkpointed (Stateful, ClientStateful).
//
// # Determinism
//
// Every random choice derives from the experiment seed and the round
// number (client sampling) or the round and the client (shuffling), never
// from shared generator state, so a run is reproducible and resumable, and
// the order in which clients finish does not matter.
package fl
