package data_test

import (
	"context"
	"fmt"
	"log"
	"math/rand/v2"

	"github.com/fedcmi/fedcmi/data"
)

// Example builds a federated setting from the synthetic data set:
// standardised features, a label-skewed partition over four clients, and a
// modality allocation.
func Example() {
	train, test, err := data.Synthetic(data.DefaultSynthetic())
	if err != nil {
		log.Fatal(err)
	}
	z := data.FitStandardizer(train) // statistics from training data only
	if train, err = z.Apply(train); err != nil {
		log.Fatal(err)
	}
	if test, err = z.Apply(test); err != nil {
		log.Fatal(err)
	}

	rng := rand.New(rand.NewPCG(1, 0))
	parts, err := data.Dirichlet(train.Labels, train.NumClasses, 4, 0.5, 10, rng)
	if err != nil {
		log.Fatal(err)
	}
	masks, err := data.AllocateModalities(4, 2, 0.5, rng)
	if err != nil {
		log.Fatal(err)
	}
	total := 0
	for k, idx := range parts {
		local, err := train.Subset(idx)
		if err != nil {
			log.Fatal(err)
		}
		total += local.Len()
		_ = masks[k] // client k trains on the modalities in masks[k]
	}
	fmt.Println(train.Len(), test.Len(), total, train.Modalities)
	// Output: 1200 600 1200 [audio visual]
}

func ExampleMask_Format() {
	names := []string{"audio", "visual"}
	for _, k := range []data.Mask{data.Full(2), 1 << 0, 1 << 1, 0} {
		fmt.Println(k.Format(names), k.Count(), k.Has(1))
	}
	// Output:
	// audio+visual 2 true
	// audio 1 false
	// visual 1 true
	// none 0 false
}

func ExampleByGroup() {
	speakers := []int{3, 1, 3, 2, 1}
	clients, ids, err := data.ByGroup(speakers)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(clients, ids)
	// Output: [[1 4] [3] [0 2]] [1 2 3]
}

// ExamplePrepare decodes CREMA-D once into a cache folder and reads it from
// there on later runs. (Not run: it needs the data set.)
func ExamplePrepare() {
	src, err := data.OpenCremaD("CREMA-D", "../shared/data/splits/cremad",
		data.MediaSpec{FreqPool: 4, TimePool: 2}, // 1 x 64 x 149 spectrograms
		&data.MediaOptions{Workers: 4})
	if err != nil {
		log.Fatal(err)
	}
	train, test, err := data.Prepare(context.Background(), src, "cache/cremad")
	if err != nil {
		log.Fatal(err) // a cache of other settings: errors.Is(err, data.ErrCacheMismatch)
	}
	fmt.Println(train.Len(), test.Len(), train.Shapes)
}
