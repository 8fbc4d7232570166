package fl

import (
	"testing"

	"github.com/fedcmi/fedcmi/data"
	"github.com/fedcmi/fedcmi/model"
)

// tiny layout: one modality-0 tensor, one personal modality-1 tensor, one fusion tensor.
var aggLayout = []model.ParamInfo{
	{Name: "a/encoder/0/weights", Shape: []int{2}, Side: 0, Part: model.PartEncoder},
	{Name: "v/classifier/weights", Shape: []int{1}, Side: 1, Part: model.PartClassifier},
	{Name: "fusion/out/weights", Shape: []int{1}, Side: -1, Part: model.PartFusion},
}

func aggParams(a0, a1, v, f float32) model.Params {
	return model.Params{
		{Name: aggLayout[0].Name, Shape: []int{2}, Data: []float32{a0, a1}},
		{Name: aggLayout[1].Name, Shape: []int{1}, Data: []float32{v}},
		{Name: aggLayout[2].Name, Shape: []int{1}, Data: []float32{f}},
	}
}

func TestAggregateModalityAware(t *testing.T) {
	const av, a, v = data.Mask(3), data.Mask(1), data.Mask(2)
	global := aggParams(100, 100, 100, 100)
	for _, tc := range []struct {
		name    string
		updates []Update
		want    model.Params
	}{
		{
			// a-side: clients 1 (n=1) and 2 (n=3): (1*1 + 3*5)/4 = 4 and (1*2+3*6)/4 = 5.
			// v-side: clients 1 and 3 (n=1, n=4): (1*10 + 4*20)/5 = 18.
			// fusion: all, n = 1,3,4: (1*1 + 3*2 + 4*3)/8 = 19/8.
			name: "weighted by modality",
			updates: []Update{
				{aggParams(1, 2, 10, 1), 1, av},
				{aggParams(5, 6, 99, 2), 3, a},
				{aggParams(77, 77, 20, 3), 4, v},
			},
			want: aggParams(4, 5, 18, 19.0/8),
		},
		{
			// Nobody holds modality 1: the v-side keeps the global value.
			name:    "no update for an absent side",
			updates: []Update{{aggParams(2, 4, 7, 6), 2, a}, {aggParams(4, 8, 9, 0), 2, a}},
			want:    aggParams(3, 6, 100, 3),
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := AggregateModalityAware(aggLayout, global, tc.updates)
			if err != nil {
				t.Fatal(err)
			}
			for i := range got {
				for j := range got[i].Data {
					if d := got[i].Data[j] - tc.want[i].Data[j]; d > 1e-6 || d < -1e-6 {
						t.Errorf("%s[%d] = %v, want %v", got[i].Name, j, got[i].Data[j], tc.want[i].Data[j])
					}
				}
			}
			if global[0].Data[0] != 100 {
				t.Fatal("global was modified")
			}
		})
	}
	if _, err := AggregateModalityAware(aggLayout, global, nil); err == nil {
		t.Error("no updates: no error")
	}
	if _, err := AggregateModalityAware(aggLayout, global, []Update{{aggParams(1, 1, 1, 1), 0, av}}); err == nil {
		t.Error("zero samples: no error")
	}
}
