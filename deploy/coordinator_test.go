package deploy

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fedcmi/fedcmi/fl"
	"github.com/fedcmi/fedcmi/internal/fedcmipb"
	"github.com/fedcmi/fedcmi/model"
)

// rawParticipant speaks the protocol directly, to test what a well-behaved
// Participant never does (retries, late uploads).
type rawParticipant struct {
	rpc     fedcmipb.FederationClient
	session string
}

func registerRaw(t *testing.T, addr, name string, layout []model.ParamInfo) *rawParticipant {
	t.Helper()
	rpc := fedcmipb.NewFederationClient(dial(t, addr, nil))
	resp, err := rpc.Register(context.Background(), &fedcmipb.RegisterRequest{ProtocolVersion: ProtocolVersion, Name: name,
		Modalities: []string{"audio", "visual"}, NumSamples: 10, LayoutDigest: LayoutDigest(layout)})
	if err != nil {
		t.Fatal(err)
	}
	return &rawParticipant{rpc: rpc, session: resp.GetSession()}
}

func (r *rawParticipant) pull(t *testing.T, layout []model.ParamInfo) (*fedcmipb.TaskHeader, model.Params) {
	t.Helper()
	stream, err := r.rpc.PullWork(context.Background(), &fedcmipb.PullRequest{ProtocolVersion: ProtocolVersion, Session: r.session})
	if err != nil {
		t.Fatal(err)
	}
	first, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	asm := newAssembler(layout, 0)
	for {
		m, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := asm.add(m.GetTensor()); err != nil {
			t.Fatal(err)
		}
	}
	p, _ := asm.done()
	return first.GetHeader(), p
}

// upload sends p as the result of task h; edit, if given, changes the
// result header first.
func (r *rawParticipant) upload(t *testing.T, h *fedcmipb.TaskHeader, p model.Params, edit ...func(*fedcmipb.ResultHeader)) *fedcmipb.UploadResponse {
	t.Helper()
	stream, err := r.rpc.Upload(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	rh := &fedcmipb.ResultHeader{
		ProtocolVersion: ProtocolVersion, Session: r.session, TaskId: h.GetTaskId(), Round: h.GetRound(),
		NumSamples: 10, Modalities: []string{"audio", "visual"}, Metrics: &fedcmipb.FitMetrics{LossSum: 1, Batches: 1},
	}
	for _, e := range edit {
		e(rh)
	}
	stream.Send(&fedcmipb.UploadChunk{Part: &fedcmipb.UploadChunk_Header{Header: rh}})
	sendParams(p, 0, 0, func(c *fedcmipb.TensorChunk) error {
		return stream.Send(&fedcmipb.UploadChunk{Part: &fedcmipb.UploadChunk_Tensor{Tensor: c}})
	})
	resp, err := stream.CloseAndRecv()
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// zeroParams returns parameters of the layout, all zero.
func zeroParams(layout []model.ParamInfo) model.Params {
	p := make(model.Params, len(layout))
	for i, info := range layout {
		p[i] = model.Tensor{Name: info.Name, Shape: info.Shape, Data: make([]float32, info.Size())}
	}
	return p
}

// TestUploadIdempotentAndLate: a retried upload counts once; an upload
// after the round's deadline is discarded as late.
func TestUploadIdempotentAndLate(t *testing.T) {
	coord, addr := testCoordinator(t, CoordinatorConfig{RoundTimeout: 2 * time.Second}, nil)
	layout := coord.cfg.Layout
	a := registerRaw(t, addr, "alpha", layout)
	b := registerRaw(t, addr, "beta", layout)
	global := zeroParams(layout)
	coord.BeginRound(1)
	type fit struct {
		res fl.FitRes
		err error
	}
	results := make(chan fit, 2)
	for _, name := range []string{"alpha", "beta"} {
		go func() {
			res, err := coord.Fit(context.Background(), name, fl.FitIns{Params: global, Config: fl.FitConfig{Round: 1, Epochs: 1}})
			results <- fit{res, err}
		}()
	}
	ha, pa := a.pull(t, layout)
	if ha.GetKind() != fedcmipb.TaskKind_TASK_KIND_FIT || ha.GetConfig().GetRound() != 1 {
		t.Fatalf("task %v", ha)
	}
	for _, want := range []fedcmipb.UploadStatus{fedcmipb.UploadStatus_UPLOAD_STATUS_ACCEPTED, fedcmipb.UploadStatus_UPLOAD_STATUS_DUPLICATE} {
		if got := a.upload(t, ha, pa).GetStatus(); got != want {
			t.Errorf("upload: %v, want %v", got, want)
		}
	}
	r := <-results
	if r.err != nil || r.res.NumSamples != 10 {
		t.Fatalf("alpha's fit: %+v", r)
	}
	hb, pb := b.pull(t, layout)
	r = <-results // beta's deadline passes
	if !errors.Is(r.err, ErrDeadline) {
		t.Fatalf("beta's fit: %v, want the deadline", r.err)
	}
	if got := b.upload(t, hb, pb).GetStatus(); got != fedcmipb.UploadStatus_UPLOAD_STATUS_LATE {
		t.Errorf("late upload: %v", got)
	}
	select {
	case r := <-results:
		t.Errorf("a Fit returned twice: %+v", r)
	default:
	}
}

// TestReregisterMidRound: a participant that registers again while its
// task is queued, declaring more modalities and samples, has its result
// checked against what it declared when the task was queued, and rejected
// (so that it undoes its round), not against the new registration: the
// round counted it by the old one.
func TestReregisterMidRound(t *testing.T) {
	coord, addr := testCoordinator(t, CoordinatorConfig{RoundTimeout: 30 * time.Second}, nil)
	layout := coord.cfg.Layout
	rpc := fedcmipb.NewFederationClient(dial(t, addr, nil))
	register := func(mods []string, n int64) *rawParticipant {
		resp, err := rpc.Register(context.Background(), &fedcmipb.RegisterRequest{ProtocolVersion: ProtocolVersion, Name: "alpha",
			Modalities: mods, NumSamples: n, LayoutDigest: LayoutDigest(layout)})
		if err != nil {
			t.Fatal(err)
		}
		return &rawParticipant{rpc: rpc, session: resp.GetSession()}
	}
	register([]string{"audio"}, 10)
	coord.BeginRound(1)
	errs := make(chan error, 1)
	go func() {
		_, err := coord.Fit(context.Background(), "alpha", fl.FitIns{Params: zeroParams(layout), Config: fl.FitConfig{Round: 1, Epochs: 1}})
		errs <- err
	}()
	// The task is queued before alpha registers again.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		coord.mu.Lock()
		queued := len(coord.parts["alpha"].queue) > 0
		coord.mu.Unlock()
		if queued || time.Now().After(deadline) {
			break
		}
	}
	wide := register([]string{"audio", "visual"}, 20)
	h, p := wide.pull(t, layout)
	resp := wide.upload(t, h, p, func(rh *fedcmipb.ResultHeader) { rh.NumSamples = 20 })
	if resp.GetStatus() != fedcmipb.UploadStatus_UPLOAD_STATUS_REJECTED || !strings.Contains(resp.GetReason(), "when its round began") {
		t.Errorf("result beyond the declaration the round began with: %v %q, want rejected", resp.GetStatus(), resp.GetReason())
	}
	if err := <-errs; err == nil {
		t.Error("Fit returned the rejected result")
	}
}

// TestRegisterTwiceWarns: a registration that replaces a live session of
// the same name (two processes under one name take turns) is warned of;
// a first registration is not.
func TestRegisterTwiceWarns(t *testing.T) {
	var logs syncBuffer
	coord, addr := testCoordinator(t, CoordinatorConfig{Logger: slog.New(slog.NewTextHandler(&logs, nil))}, nil)
	registerRaw(t, addr, "alpha", coord.cfg.Layout)
	if strings.Contains(logs.String(), "replaced a live session") {
		t.Fatalf("a first registration warned:\n%s", logs.String())
	}
	registerRaw(t, addr, "alpha", coord.cfg.Layout)
	if !strings.Contains(logs.String(), "replaced a live session") {
		t.Errorf("a second live registration under one name was not warned of:\n%s", logs.String())
	}
}

func TestAssembler(t *testing.T) {
	layout := []model.ParamInfo{{Name: "a", Shape: []int{2, 3}}, {Name: "b", Shape: []int{3}}}
	p := model.Params{
		{Name: "a", Shape: []int{2, 3}, Data: []float32{1, 2, 3, 4, 5, 6}},
		{Name: "b", Shape: []int{3}, Data: []float32{-1, 0, 1}},
	}
	var chunks []*fedcmipb.TensorChunk
	n, err := sendParams(p, 0, 8, func(c *fedcmipb.TensorChunk) error { chunks = append(chunks, c); return nil })
	if err != nil || n != 36 || len(chunks) != 5 {
		t.Fatalf("sent %d bytes in %d chunks (%v), want 36 in 5", n, len(chunks), err)
	}
	asm := newAssembler(layout, 0)
	for _, c := range chunks {
		if err := asm.add(c); err != nil {
			t.Fatal(err)
		}
	}
	got, err := asm.done()
	if err != nil {
		t.Fatal(err)
	}
	for i := range p {
		if got[i].Name != p[i].Name || len(got[i].Data) != len(p[i].Data) {
			t.Fatalf("tensor %d: %+v", i, got[i])
		}
		for j := range p[i].Data {
			if got[i].Data[j] != p[i].Data[j] {
				t.Fatalf("tensor %d value %d: %v, want %v", i, j, got[i].Data[j], p[i].Data[j])
			}
		}
	}
	clone := func(c *fedcmipb.TensorChunk) *fedcmipb.TensorChunk {
		return &fedcmipb.TensorChunk{Index: c.Index, Name: c.Name, Dtype: c.Dtype, Shape: c.Shape, Offset: c.Offset, Data: c.Data}
	}
	for _, tc := range []struct {
		name   string
		chunks func() []*fedcmipb.TensorChunk
		want   string
	}{
		{"second tensor first", func() []*fedcmipb.TensorChunk { return chunks[3:] }, "arrived before"},
		{"piece skipped", func() []*fedcmipb.TensorChunk { return []*fedcmipb.TensorChunk{chunks[0], chunks[2]} }, "out of order"},
		{"wrong name", func() []*fedcmipb.TensorChunk { c := clone(chunks[0]); c.Name = "z"; return []*fedcmipb.TensorChunk{c} }, `is "z", want "a"`},
		{"wrong dtype", func() []*fedcmipb.TensorChunk {
			c := clone(chunks[0])
			c.Dtype = fedcmipb.DType_DTYPE_UNSPECIFIED
			return []*fedcmipb.TensorChunk{c}
		}, "dtype"},
		{"wrong shape", func() []*fedcmipb.TensorChunk {
			c := clone(chunks[0])
			c.Shape = []int64{3, 2}
			return []*fedcmipb.TensorChunk{c}
		}, "shape [3 2]"},
		{"oversized", func() []*fedcmipb.TensorChunk {
			c := clone(chunks[0])
			c.Data = make([]byte, 28)
			return []*fedcmipb.TensorChunk{c}
		}, "oversized"},
		{"ragged bytes", func() []*fedcmipb.TensorChunk {
			c := clone(chunks[0])
			c.Data = c.Data[:3]
			return []*fedcmipb.TensorChunk{c}
		}, "whole float32"},
		{"index out of range", func() []*fedcmipb.TensorChunk { c := clone(chunks[0]); c.Index = 7; return []*fedcmipb.TensorChunk{c} }, "outside"},
		{"incomplete", func() []*fedcmipb.TensorChunk { return chunks[:4] }, "incomplete"},
	} {
		asm := newAssembler(layout, 0)
		var err error
		for _, c := range tc.chunks() {
			if err = asm.add(c); err != nil {
				break
			}
		}
		if err == nil {
			_, err = asm.done()
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error with %q", tc.name, err, tc.want)
		}
	}
}

func TestParseRoster(t *testing.T) {
	for _, tc := range []struct {
		text, name, token string
		want              string // "" = accepted, else in the error
	}{
		{"a tok\n", "a", "tok", ""},
		{"a tok\n", "a", "bad", "wrong token"},
		{"a -\n", "a", "", ""},
		{"# comment\n\na - revoked\n", "a", "", "revoked"},
		{"a tok\n", "b", "tok", "not on the roster"},
	} {
		r, err := ParseRoster(strings.NewReader(tc.text), "t")
		if err != nil {
			t.Fatal(err)
		}
		err = r.check(tc.name, tc.token)
		if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%q as %s/%s: %v, want %q", tc.text, tc.name, tc.token, err, tc.want)
		}
	}
	for _, tc := range []struct {
		text string
		max  int
	}{
		{"a tok\n", 0},
		{"a tok max_samples=500\n", 500},
		{"a - revoked max_samples=7\n", 7},
		{"a - max_samples=7 revoked\n", 7},
	} {
		r, err := ParseRoster(strings.NewReader(tc.text), "t")
		if err != nil {
			t.Fatalf("%q: %v", tc.text, err)
		}
		if got := r.MaxSamples("a"); got != tc.max {
			t.Errorf("%q: MaxSamples %d, want %d", tc.text, got, tc.max)
		}
	}
	for _, bad := range []string{"a b c\n", "a/b x\n", "a x\na y\n", "a b revoked extra\n", "a b revoked revoked\n",
		"a b max_samples=0\n", "a b max_samples=-3\n", "a b max_samples=x\n", "a b max_samples=1 max_samples=2\n", "a b max_samples=99999999999999999999\n"} {
		if _, err := ParseRoster(strings.NewReader(bad), "t"); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestRosterRevoke: revoking a name refuses it; a name not on the roster
// (a typo such as site_b for site-b) is an error naming it and the roster
// file, and then nobody is revoked, as the participant meant would still
// be admitted.
func TestRosterRevoke(t *testing.T) {
	const text = "site-a -\nsite-b tok\n"
	for _, tc := range []struct {
		name    string
		revoke  []string
		wantErr []string // in the error; nil: none
		refused []string // refused afterwards
	}{
		{"one", []string{"site-b"}, nil, []string{"site-b"}},
		{"two", []string{"site-a", "site-b"}, nil, []string{"site-a", "site-b"}},
		{"again", []string{"site-b", "site-b"}, nil, []string{"site-b"}},
		{"typo", []string{"site_b"}, []string{`"site_b"`, "certs/roster.txt"}, nil},
		{"typo beside a good name", []string{"site-a", "site_b", "site-c"}, []string{`"site_b", "site-c"`, "certs/roster.txt"}, nil},
		{"empty", []string{""}, []string{`""`}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := ParseRoster(strings.NewReader(text), "certs/roster.txt")
			if err != nil {
				t.Fatal(err)
			}
			err = r.Revoke(tc.revoke...)
			if (err != nil) != (tc.wantErr != nil) {
				t.Fatalf("Revoke(%q): %v, want an error: %v", tc.revoke, err, tc.wantErr != nil)
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Revoke(%q): %v, want it to name %s", tc.revoke, err, w)
				}
			}
			for _, name := range []string{"site-a", "site-b"} {
				token := map[string]string{"site-b": "tok"}[name]
				err := r.check(name, token)
				if refused := slices.Contains(tc.refused, name); refused != (err != nil) {
					t.Errorf("after Revoke(%q), %s: %v, want refused: %v", tc.revoke, name, err, refused)
				}
			}
			if got := r.Names(); !slices.Equal(got, []string{"site-a", "site-b"}) {
				t.Errorf("Names %q after Revoke(%q), want the file's", got, tc.revoke)
			}
		})
	}
}
