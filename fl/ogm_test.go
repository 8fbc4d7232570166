package fl

import (
	"context"
	"testing"
)

func TestOGMOptionsActive(t *testing.T) {
	for _, tc := range []struct {
		o      OGMOptions
		round  int
		active bool
	}{
		{OGMOptions{StartRound: 1}, 1, true},
		{OGMOptions{StartRound: 1}, 99, true},
		{OGMOptions{StartRound: 3, EndRound: 5}, 2, false},
		{OGMOptions{StartRound: 3, EndRound: 5}, 3, true},
		{OGMOptions{StartRound: 3, EndRound: 5}, 5, true},
		{OGMOptions{StartRound: 3, EndRound: 5}, 6, false},
	} {
		if got := tc.o.Active(tc.round); got != tc.active {
			t.Errorf("%+v round %d: active %v", tc.o, tc.round, got)
		}
	}
}

// TestOGMClients: in the modulated rounds ModalityAware tells clients to
// modulate; a multimodal client then reports coefficients in [0, 1] with
// the dominant side below 1 on average, unimodal clients train as FedAvg.
func TestOGMClients(t *testing.T) {
	srv, st, locals, global := scaffoldSetup(t)
	base := st.Base
	base.Method = methods["ogm-ge"]
	base.PerRound = 3
	ogm := &OGMGE{ModalityAware: base, Options: OGMOptions{Alpha: 0.8, StartRound: 2, EndRound: 2}}
	for round, want := range map[int]bool{1: false, 2: true, 3: false} {
		ins, err := ogm.ConfigureFit(round, global, srv.Clients)
		if err != nil {
			t.Fatal(err)
		}
		for _, in := range ins {
			if rc, on := in.Ins.Config.Recipe.(OGMFit); on != want || (want && rc.Alpha != 0.8) {
				t.Fatalf("round %d: config %+v", round, in.Ins.Config)
			}
		}
	}
	ins, _ := ogm.ConfigureFit(2, global, srv.Clients)
	for _, in := range ins {
		res, err := locals[in.ClientID].Fit(context.Background(), in.Ins)
		if err != nil {
			t.Fatal(err)
		}
		m := res.Metrics
		rep, _ := m.Report.(*OGMReport)
		if !(res.Modalities.Has(0) && res.Modalities.Has(1)) {
			if rep != nil {
				t.Fatalf("unimodal client %s modulated %d batches", in.ClientID, rep.Batches)
			}
			continue
		}
		if rep == nil || rep.Batches != m.Batches || m.Batches == 0 {
			t.Fatalf("multimodal client: report %+v of %d batches", rep, m.Batches)
		}
		kA, kV := rep.CoefSum[0]/float64(rep.Batches), rep.CoefSum[1]/float64(rep.Batches)
		t.Logf("mean k_A %.3f, k_V %.3f over %d batches", kA, kV, rep.Batches)
		if kA < 0 || kA > 1 || kV < 0 || kV > 1 || min(kA, kV) >= 1 {
			t.Fatalf("mean coefficients k_A %.3f, k_V %.3f", kA, kV)
		}
	}
}
