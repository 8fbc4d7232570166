// Package text turns short texts such as tweets into fixed-length float32
// feature vectors, the form in which fedcmi's models consume a modality:
// a text becomes one more modality whose vectors an MLP encoder reads, next
// to image or audio features. It was written for CrisisMMD (tweet text and
// image, task "informative", two classes), but nothing in it is specific
// to that data set.
//
// The pipeline has two or three steps:
//
//	toks := text.Tokenize(tweet)              // []string
//	bag := text.DefaultHashedBag()            // 4096 buckets, uni- and bigrams
//	vec := make([]float32, bag.Dim)
//	err := bag.Featurize(toks, vec)           // or vec, err := bag.Vector(tweet)
//	err = idf.Apply(vec)                      // optional, idf := text.FitIDF(trainToks, bag)
//
// # Tokens
//
// [Tokenize] normalises a tweet to Unicode NFKC (so that full-width and
// "mathematical bold" letters, common in tweets, read as plain letters),
// lowercases it and splits it into runs of letters and digits. Links become
// the token [URLToken], @mentions [UserToken]; retweet markers ("RT
// @user:") are dropped; a hashtag contributes its words ("#Flood" gives
// "flood"). Punctuation and emoji are dropped by default; a [Tokenizer]
// with Hashtags or Symbols set also keeps hashtags as such ("#flood") and
// emoji as tokens, either of which may help to tell informative tweets
// from prayers and sympathy. The exact rules are listed at
// [Tokenizer.Tokenize].
//
// # Hashed n-gram bags
//
// [HashedBag] counts word n-grams (by default unigrams and bigrams) and
// stores each count in one of Dim buckets chosen by a hash of the n-gram,
// the "hashing trick". There is no vocabulary: nothing is fitted, nothing
// must be stored with a run or shared between federated clients, and a
// word first seen at test time lands in a bucket like any other. Each
// client can featurise its own tweets independently and the vectors agree,
// because the hash (64-bit FNV-1a followed by the MurmurHash3 finaliser) is
// fixed and documented, independent of the process, machine and Go version.
//
// The price is collisions: with 4096 buckets, distinct n-grams share
// buckets. Each n-gram's count enters with a sign drawn from its hash, so
// colliding n-grams add noise of zero mean rather than a systematic bias,
// and a model can still separate them partly through the other n-grams of
// the text. Counts are damped to 1+ln(tf) (a repeated word or hashtag
// should not dominate a tweet) and the vector is scaled to unit Euclidean
// norm, so long and short tweets are comparable; both can be switched off.
// 4096 buckets keep the first layer of an MLP encoder small; raise Dim for
// larger corpora.
//
// # Document frequency
//
// An [IDF], fitted on the training documents by [FitIDF], weights each
// bucket by its smoothed inverse document frequency, as scikit-learn does,
// turning the bag into tf-idf: words in every tweet ("the", "<url>") count
// less than rare ones. It is optional, because an MLP encoder learns its
// own per-feature weights; it mainly helps linear models and small
// training sets. An IDF is fitted on the training set only and applied to
// training and test vectors alike, like data.Standardizer, and is stored
// with a run as JSON. In a federated setting its counts are sums over
// clients, so they can be aggregated without moving any text, but they do
// reveal how many of a client's tweets fall into each bucket.
//
// # Why not BERT
//
// The CrisisMMD reference models encode tweets with BERT. fedcmi cannot:
// it runs offline, so there are no pretrained weights or WordPiece
// vocabularies to download, and on a CPU a BERT-base forward pass costs
// some billions of floating-point operations per tweet, which every
// federated client would pay in every round if it were fine-tuned. A
// hashed bag costs microseconds per tweet and trains from scratch on the
// task's own data.
//
// What this loses is everything BERT learnt before seeing the task: that
// "quake" and "earthquake", or "destroyed" and "wrecked", mean nearly the
// same (here they are unrelated features), robustness to misspellings and
// rare words, and context beyond two adjacent words, such as negation
// ("no damage reported"). Bags of n-grams are strong baselines for short
// texts, but expect lower accuracy than with fine-tuned or frozen BERT
// features, most of all with little training data per client.
//
// # Using precomputed embeddings instead
//
// Nothing downstream depends on how a text vector was made: the model
// reads a fixed-length float32 vector per sample. To use BERT (or any
// sentence encoder), compute the embeddings elsewhere, for example with
// Python and the transformers library, one pooled 768-value vector per
// tweet, and save them with the image features in NumPy archives
// (np.savez("train.npz", text=..., image=..., labels=...), likewise
// test.npz). The project's npz feature-set loader (data.LoadNPZ, selected
// with data.source: npz and data.modalities: [image, text] in an
// experiment file) then reads them like any other modality, checked and
// standardised as usual. Conversely, a HashedBag can featurise tweets in
// Go and the result be written to the same format, so that both kinds of
// text feature are compared with the same experiment file. Code that only
// needs some featuriser can take a func(string) ([]float32, error), which
// the method value bag.Vector is.
//
// # Errors and concurrency
//
// Errors begin with "text: " and wrap the sentinels [ErrConfig],
// [ErrShape] and [ErrFormat] for errors.Is. No input makes a function of
// this package panic: arbitrary bytes, invalid UTF-8 and out-of-range
// settings give tokens or errors. There is no package-level state; a
// Tokenizer and a HashedBag are plain values, safe to share between
// goroutines, and an IDF may be shared once fitted, as Apply only reads it.
package text
