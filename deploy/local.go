package deploy

import (
	"context"
	"fmt"
	"log/slog"
	"slices"

	"google.golang.org/grpc"

	"github.com/fedcmi/fedcmi/config"
	"github.com/fedcmi/fedcmi/data"
	"github.com/fedcmi/fedcmi/fl"
	"github.com/fedcmi/fedcmi/model"
	"github.com/fedcmi/fedcmi/sim"
)

// Local is a participant's own side: its client, what it declares, and
// its model.
type Local struct {
	Client     *fl.LocalClient
	Info       fl.ClientInfo
	Modalities []string
	Layout     []model.ParamInfo
}

// Participant returns a participant that connects to the coordinator over
// conn and trains l's client, declaring l's model, modalities and samples
// at registration, under l's client name; set the other fields (Token,
// StateFile, ...) before Run.
func (l *Local) Participant(conn grpc.ClientConnInterface) *Participant {
	return &Participant{Conn: conn, Name: l.Info.ID, Client: l.Client,
		ModelModalities: l.Modalities, Holds: l.Info.Modalities, NumSamples: l.Info.NumSamples, Layout: l.Layout}
}

// ShardLocal builds client i of the simulation of cfg: the same data rows,
// modalities, model and name (client-0000, ...), so that a federation of
// cfg.Clients shards gives the simulation's numbers.
func ShardLocal(ctx context.Context, cfg *config.Config, i int, log *slog.Logger) (*Local, error) {
	fed, err := sim.PrepareFor(ctx, cfg, log, 1, 0)
	if err != nil {
		return nil, err
	}
	if i < 0 || i >= len(fed.Parts) {
		return nil, fmt.Errorf("deploy: shard %d: the config splits the data among %d clients", i, len(fed.Parts))
	}
	c, err := fed.Client(i)
	if err != nil {
		return nil, err
	}
	return &Local{Client: c, Info: fed.Info(i),
		Modalities: fed.Modalities(), Layout: fed.Engine.Layout()}, nil
}

// DataLocal builds a participant training on all of its own data: the
// training split of the data set in dir (an npz set needs no test.npz),
// read by the loader cfg's data.source names (npz, mfeat, a media set),
// holding the modalities named in holds (empty: all). The model comes
// from cfg and the data's shapes, so it matches the coordinator's when
// both read the same kind of data: a site without a modality still gives
// its array (any values, zeros say: only the modalities in holds are
// read), for its shape. Standardisation, if on, uses the participant's own
// statistics.
func DataLocal(ctx context.Context, cfg *config.Config, dir, name string, holds []string, log *slog.Logger) (*Local, error) {
	cfg.Data.Dir = dir
	train, _, err := sim.LoadTrain(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	arch, err := sim.Arch(cfg, train)
	if err != nil {
		return nil, err
	}
	engine, err := sim.NewEngine(cfg, arch, 1)
	if err != nil {
		return nil, err
	}
	mods := slices.Clone(train.Modalities)
	mask := data.Full(len(mods))
	if len(holds) > 0 {
		if mask, err = maskOf(holds, mods); err != nil {
			return nil, fmt.Errorf("deploy: %w", err)
		}
	}
	index := make([]int, train.Len())
	for i := range index {
		index[i] = i
	}
	c, err := fl.NewLocalClient(engine, train, index, mask)
	if err != nil {
		return nil, err
	}
	return &Local{Client: c, Info: fl.ClientInfo{ID: name, Modalities: mask, NumSamples: len(index)},
		Modalities: mods, Layout: engine.Layout()}, nil
}
