package text_test

import (
	"encoding/json"
	"fmt"
	"math"

	"github.com/fedcmi/fedcmi/text"
)

func ExampleTokenize() {
	fmt.Printf("%q\n", text.Tokenize("RT @KHOU: Heavy FLOODING on I-45 🙏 #HurricaneHarvey https://t.co/AbC"))
	// Output: ["<user>" "heavy" "flooding" "on" "i" "45" "hurricaneharvey" "<url>"]
}

func ExampleTokenizer() {
	tok := text.Tokenizer{Hashtags: true, Symbols: true}
	fmt.Printf("%q\n", tok.Tokenize("Praying for #Mexico 🙏"))
	// Output: ["praying" "for" "#mexico" "mexico" "🙏"]
}

func ExampleHashedBag_Vector() {
	bag := text.DefaultHashedBag()
	v, err := bag.Vector("Bridge collapsed, bridge closed")
	if err != nil {
		fmt.Println(err)
		return
	}
	// 4 distinct unigrams and 3 bigrams; "bridge" occurs twice.
	var nonzero int
	var norm float64
	for _, x := range v {
		if x != 0 {
			nonzero++
		}
		norm += float64(x) * float64(x)
	}
	fmt.Printf("length %d, %d non-zero, norm %.3f\n", len(v), nonzero, math.Sqrt(norm))
	// Output: length 4096, 6 non-zero, norm 1.000
}

func ExampleFitIDF() {
	bag := text.DefaultHashedBag()
	var train [][]string
	for _, s := range []string{"flood water rising", "pray for the flood victims", "water supply cut"} {
		train = append(train, text.Tokenize(s))
	}
	idf := text.FitIDF(train, bag)

	v, _ := bag.Vector("flood water everywhere")
	if err := idf.Apply(v); err != nil { // tf-idf, normalised again
		fmt.Println(err)
		return
	}
	b, _ := json.Marshal(idf) // to be stored with the run
	fmt.Println(idf.Docs, len(idf.DF), len(b) > 0)
	// Output: 3 4096 true
}
