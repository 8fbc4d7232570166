package fl

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
)

// Attacks of a Byzantine client (Byzantine.Attack).
const (
	AttackSignFlip = "sign_flip"
	AttackScale    = "scale"
	AttackNoise    = "noise"
)

// AttackNames lists the known attacks.
var AttackNames = []string{AttackSignFlip, AttackScale, AttackNoise}

// Byzantine is a client that trains honestly and then sends a corrupted
// model, to test robust aggregation. With u its honest update (trained
// model minus the received global one) and f its Factor, it sends
//
//   - sign_flip: global - f u (f = 1 if 0);
//   - scale: global + f u (f = 100 if 0);
//   - noise: global plus Gaussian noise of standard deviation f (1 if 0)
//     in every value, seeded by the round's client seed.
type Byzantine struct {
	Client
	Attack string
	Factor float64
}

// Validate checks the attack's name and factor.
func (b *Byzantine) Validate() error {
	if !slices.Contains(AttackNames, b.Attack) {
		return fmt.Errorf("fl: unknown attack %q (known: %v)", b.Attack, AttackNames)
	}
	if !(b.Factor >= 0) {
		return fmt.Errorf("fl: attack factor %v must be >= 0", b.Factor)
	}
	return nil
}

// Fit implements Client.
func (b *Byzantine) Fit(ctx context.Context, ins FitIns) (FitRes, error) {
	if err := b.Validate(); err != nil {
		return FitRes{}, err
	}
	res, err := b.Client.Fit(ctx, ins)
	if err != nil {
		return res, err
	}
	if len(res.Params) != len(ins.Params) {
		return FitRes{}, fmt.Errorf("fl: byzantine: %d tensors trained from %d", len(res.Params), len(ins.Params))
	}
	f := b.Factor
	if f == 0 {
		f = map[string]float64{AttackSignFlip: 1, AttackScale: 100, AttackNoise: 1}[b.Attack]
	}
	rng := rand.New(rand.NewPCG(ins.Config.Seed, 0x62797a))
	out := res.Params.Clone()
	for i, t := range out {
		g := ins.Params[i].Data
		if len(g) != len(t.Data) {
			return FitRes{}, fmt.Errorf("fl: byzantine: tensor %q has %d values, global %d", t.Name, len(t.Data), len(g))
		}
		for j, v := range t.Data {
			x, u := float64(g[j]), float64(v)-float64(g[j])
			switch b.Attack {
			case AttackSignFlip:
				t.Data[j] = float32(x - f*u)
			case AttackScale:
				t.Data[j] = float32(x + f*u)
			case AttackNoise:
				t.Data[j] = float32(x + f*rng.NormFloat64())
			}
		}
	}
	res.Params = out
	return res, nil
}
