package fl

// Stateful is implemented by strategies that carry state from one round to
// the next beyond the global model (SCAFFOLD's server control variate,
// FedMDrop's global prototypes, say). A coordinator saves the state with
// the global model after every round and restores it on resume, so a
// resumed run continues exactly where the saved one stopped.
type Stateful interface {
	// MarshalState encodes the state after the last aggregated round.
	MarshalState() ([]byte, error)
	// UnmarshalState restores a state written by MarshalState; it rejects
	// data that does not match the strategy (another layout, say).
	UnmarshalState(data []byte) error
}

// ClientStateful is implemented by clients that keep state between rounds
// (personal parameters, SCAFFOLD's client control variate), so a
// participant process can save it and pick it up after a restart.
type ClientStateful interface {
	// MarshalState encodes the client's state.
	MarshalState() ([]byte, error)
	// UnmarshalState restores a state written by MarshalState.
	UnmarshalState(data []byte) error
}
