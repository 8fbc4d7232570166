// Package deploy runs fedcmi as a real federation across machines: a
// coordinator (fedcmi serve) and participants (fedcmi join) that talk gRPC
// (proto/fedcmi/v1), with the same strategy and client code as the
// simulation.
//
// # Shape
//
// The Coordinator is both the gRPC Federation service and an fl.Transport:
// an fl.Server drives each round through it exactly as the simulation does
// through fl.InmemTransport. Coordinator.Fit queues a task for the named
// participant and waits for its validated result, the round's deadline, or
// cancellation. Participants dial the coordinator (never the reverse):
// Register, then PullWork (a long poll that streams the task and the global
// model), Upload (a stream of the result), and Heartbeat. Parameters travel
// as named float32 tensors in little-endian chunks (DefaultChunkBytes), so
// a model of any size fits gRPC's message limit; SCAFFOLD's control
// variates are a second set of tensors. The complete fl.FitConfig and
// fl.FitMetrics (with a method's report) also travel gob-encoded beside
// their protobuf fields, so methods that add fields need no schema change.
//
// Serve wires an experiment config into a coordinator: it builds the same
// data, model and strategy as sim.Run (sim.Prepare, sim.NewStrategy),
// samples among the participants whose heartbeats are current (sorted by
// name, so client-0000.. are the simulation's clients in its order), and
// writes the same run directory plus the coordinator's state (StateFile).
//
// # Security
//
// Mutual TLS is the default: the coordinator accepts client certificates
// of its CA, and the certificate's common name is the participant's name.
// A Roster restricts names, adds per-participant tokens and revocations.
// Every update is checked before it can reach aggregation: tensors against
// the layout while they stream in (names, dtype, shapes, sizes), then
// fl.CheckUpdate (finite values), the sample count and modalities declared
// at registration, the metrics with the method's report
// (fl.FitMetrics.Validate: finite values, counts in range, per-class
// fields of the model's number of classes), and the optional norm bound.
// A refused update is answered REJECTED, logged with the participant's
// name and the reason, and counted by reason in the rejections metric;
// the round goes on without it. Gob blobs are decoded only within a limit
// derived from the model's size (gobLimit), inside gRPC's message bound.
// A participant likewise refuses a recipe that is not valid
// (fl.FitConfig.Validate), reporting the task as failed. Registrations are
// rate-limited; messages are bounded. Failed TLS handshakes are logged
// with the remote address and counted by reason (ServerCredentials).
//
// Weights are the sample counts participants declare: MaxSamples and the
// roster's max_samples bound the declaration, and no result takes more
// than MaxWeightShare of a round's weight (capWeights), so a participant
// claiming billions of samples cannot become the global model. What the
// coordinator cannot detect (false counts within the bounds, poisoned
// models within the norm bound) is the README's threat model.
//
// # Secure aggregation
//
// With CoordinatorConfig.SecAgg (serve -secagg) every fit round is a
// secure aggregation round of internal/secagg: the task carries the
// round's setup, the participant advertises and shares keys through the
// SecAgg call, trains, uploads a masked input (per modality group, in
// fixed point) instead of tensors, and reveals shares for unmasking. The
// coordinator sums the masked inputs as they arrive, unmasks the group
// sums once the survivors revealed, and hands the strategy one result per
// survivor holding the resulting mean model, so that every mean-based
// aggregation (and server optimizer) gives the same model. Settings that
// need single updates are refused (checkSecAgg).
//
// # Faults
//
// A round's results are awaited until its deadline (RoundTimeout); late
// uploads are answered LATE and dropped, a repeated upload DUPLICATE and
// counted once. An upload runs while its task is open (and at most a
// grace period past its deadline), one at a time per task; one that sends
// no header within 30 s is ended. A participant
// whose heartbeats fail three times in a row ends its session and
// reconnects (or gives up, Participant.GiveUpAfter). The state after each
// round (global model, round, strategy state via fl.Stateful, metrics) is
// written atomically, so Serve with Resume continues after a crash with
// the numbers of an uninterrupted run
// (from round 1 if it died before its first save; at once to the summary
// if every round was done). Participants re-register when the coordinator
// restarts, with backoff; one speaking plain text to a TLS coordinator, or
// the reverse, stops with ErrWrongTransport. /healthz reports the run's
// phase, and 503 for a failed run or a round without progress for longer
// than StuckAfter.
package deploy
