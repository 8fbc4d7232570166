package fl

import (
	"context"
	"errors"

	"github.com/fedcmi/fedcmi/model"
)

// Transport carries instructions to clients and their results back. The
// Server is its only caller; strategies and clients never see it.
type Transport interface {
	// Fit delivers ins to the client and waits for its result.
	Fit(ctx context.Context, clientID string, ins FitIns) (FitRes, error)
	// Evaluate asks the client to evaluate params on its own data.
	Evaluate(ctx context.Context, clientID string, params model.Params) (Evaluation, error)
	// Close releases the transport's resources.
	Close() error
}

// Errors returned by transports.
var (
	// ErrUnknownClient is returned for a client ID the transport does not know.
	ErrUnknownClient = errors.New("fl: unknown client")
	// ErrDisconnected is returned for a client that is cut off.
	ErrDisconnected = errors.New("fl: client disconnected")
	// ErrClosed is returned after Close.
	ErrClosed = errors.New("fl: transport closed")
)
