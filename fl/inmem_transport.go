package fl

import (
	"context"
	"fmt"
	"sync"

	"github.com/fedcmi/fedcmi/model"
)

// InmemTransport calls clients in the same process: the simulation's
// transport, and the tests'. Disconnect cuts a client off to simulate a
// dropout.
type InmemTransport struct {
	mu      sync.Mutex
	clients map[string]Client
	cut     map[string]bool
	closed  bool
}

// NewInmemTransport returns a transport for the given clients by ID.
func NewInmemTransport(clients map[string]Client) *InmemTransport {
	m := make(map[string]Client, len(clients))
	for id, c := range clients {
		m[id] = c
	}
	return &InmemTransport{clients: m, cut: make(map[string]bool)}
}

func (t *InmemTransport) client(id string) (Client, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case t.closed:
		return nil, ErrClosed
	case t.cut[id]:
		return nil, fmt.Errorf("%w: %s", ErrDisconnected, id)
	}
	c, ok := t.clients[id]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrUnknownClient, id)
	}
	return c, nil
}

// Fit implements Transport.
func (t *InmemTransport) Fit(ctx context.Context, id string, ins FitIns) (FitRes, error) {
	c, err := t.client(id)
	if err != nil {
		return FitRes{}, err
	}
	return c.Fit(ctx, ins)
}

// Evaluate implements Transport.
func (t *InmemTransport) Evaluate(ctx context.Context, id string, params model.Params) (Evaluation, error) {
	c, err := t.client(id)
	if err != nil {
		return Evaluation{}, err
	}
	return c.Evaluate(ctx, params)
}

// Disconnect cuts the client off until Reconnect.
func (t *InmemTransport) Disconnect(id string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.cut[id] = true
}

// Reconnect undoes Disconnect.
func (t *InmemTransport) Reconnect(id string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.cut, id)
}

// Close implements Transport.
func (t *InmemTransport) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.closed = true
	return nil
}
