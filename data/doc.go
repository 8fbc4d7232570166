// Package data provides the labelled multimodal sample sets of fedcmi, the
// loaders that produce them, and the ways of dividing them among federated
// clients: by samples (IID, Dirichlet label skew, natural groups) and by
// modalities (which clients hold which modalities).
//
// # Sets and modalities
//
// A [Set] holds N samples, each described by one feature vector per
// modality and an integer class label. Modalities are named ("audio",
// "visual", or the mfeat view names) and stored in a fixed order; a
// modality's features are one row-major float32 slice of N x D values, so a
// sample's row is a slice of it ([Set.Row]) and whole modalities can be
// handed to a model without copying. [Set.Validate] checks every invariant:
// shapes, unique names, labels in range and finite features.
//
// Sets are treated as values that are not modified once built. [Set.Select]
// (a subset of modalities) shares storage with its input; [Set.Subset]
// (a subset of samples, as a client's local data) and
// [Standardizer.Apply] copy features.
//
// # Data sets
//
// [Synthetic] generates the project's default data set: two modalities, a
// strong one that alone separates the classes well and a weak one that
// alone does much worse, with an imbalance that differs between classes
// (or more modalities, each with its own signal strength).
// It exists so that the modality-imbalance methods have something to act
// on without any download, and so that tests run in milliseconds.
//
// [LoadNPZ] reads precomputed feature vectors (for example pooled encoder
// outputs of CREMA-D or AVE clips) from NumPy .npz archives, one array per
// modality plus labels and optional owner groups; [LoadNPZWith] also bounds
// what the archives may decompress to and takes a logger for warnings.
// [LoadMfeat] reads the UCI
// Multiple Features digits, six views of very different strength, of which
// a strong/weak pair such as fac + zer shows modality imbalance on real data.
//
// # Media data sets
//
// The media loaders read audio-visual and image-text data sets as they are
// distributed and preprocess them as the FedCMI reference code does:
// [OpenCremaD] (CREMA-D: WAV files and frame folders, labels from the file
// names, speakers as groups), [OpenAVE] (AVE: WAV files and frame folders,
// the annotated event window of the audio tiled to 10 s), [OpenCrisisMMD]
// (CrisisMMD's "informative" task: tweet text and image) and
// [OpenAVDigits] (FSDD recordings paired by digit with MNIST images,
// speakers as groups). Each reads the data set's split lists into a
// [Source]; [Source.Load] decodes the media on a small pool of goroutines
// (two by default) into Sets whose Shapes give each modality's sample
// shape: [1, F, T] for a spectrogram, [K, C, H, W] for K frames,
// [C, H, W] for an image, nil for a text vector. LoadCremaD, LoadAVE,
// LoadCrisisMMD and LoadAVDigits open and load in one call.
//
// A [MediaSpec] says how media become features: the audio rate, clip
// length and spectrogram pooling, the number, size and channels of frames
// and images, the text vector length. Its defaults follow the reference
// except where a CPU budget asks for smaller inputs (64 x 64 images, and
// pooled spectrograms for the digits); each field documents its default.
// Images are preprocessed with the deterministic evaluation transform;
// random training augmentation is not part of the features.
//
// A split list that cannot be parsed is reported as a [*ParseError] with
// file, line and column; a label outside the class list wraps [ErrLabel];
// an empty split [ErrShape]. Samples whose media are missing are reported
// before anything is decoded, naming the first few; a file that fails to
// decode (a truncated WAV, an unsupported sample format, a corrupt JPEG,
// an empty frame folder) is reported with the audio or vision package's
// error, which names the file. MediaOptions.SkipBroken leaves such samples
// out instead and logs how many.
//
// # Preprocessing cache
//
// Decoding and preprocessing media costs far more than training on small
// inputs, so [Prepare] decodes a Source once into a cache folder and reads
// the features back on later runs: about 1500 AV-digit clips per second
// decoded on two cores, against some 30000 per second read from the
// cache. The cache is a manifest.json, identifying the data set, the
// effective MediaSpec by its [MediaSpec.Key] and the samples by a
// fingerprint, and shard files of a few hundred samples each, written
// atomically, so that an interrupted preparation resumes where it
// stopped. A cache built with another spec, for another data set or from
// other samples is refused with [ErrCacheMismatch], naming both sides.
//
// # Standardisation
//
// Real feature sets are rarely scaled: MFCCs and pixel statistics in the
// hundreds made every method diverge in the measurements behind this
// project. [FitStandardizer] computes per-dimension means and standard
// deviations on the training set only, and [Standardizer.Apply] applies them
// to training, test and client data alike. The Standardizer's fields are
// exported so that the statistics can be stored with a run.
//
// # Partitions
//
// A partition gives each client a sorted list of sample indices; the lists
// are disjoint and together cover every sample once. [IID] shuffles and cuts
// into near-equal parts. [Dirichlet] produces label skew as the FedCMI
// reference code does (per class, Dirichlet proportions over the clients,
// with a size cap of 1.1 n/N and redraws until every client has minSize
// samples). [ByGroup] makes one client per natural owner, such as a speaker.
// The test set is not partitioned: it stays with the server.
//
// Modality heterogeneity is separate: [AllocateModalities] gives each client
// a [Mask] of the modalities it holds, a fraction of the clients holding
// both and the rest split between the two single-modality kinds.
//
// # Randomness
//
// There is no package-level state. Every random choice is drawn from a
// *rand.Rand (math/rand/v2) passed in by the caller, who creates it with
// rand.New(rand.NewPCG(seed, seq)); the same seed gives the same result.
// [Synthetic] and [OpenAVDigits] are the exceptions in form only: they
// take a seed and derive their own PCG streams from it (for the class
// prototypes and samples, and for the pairing of recordings with images).
//
// # Errors
//
// Errors name what failed and where: the file, the array or line and
// column, the modality and row. Problems inside input files are reported as
// [*ParseError]. Errors wrap sentinels ([ErrShape], [ErrLabel],
// [ErrNonFinite], [ErrUnknownModality], [ErrFormat], [ErrInfeasible],
// [ErrCacheMismatch]) for errors.Is, and a missing file wraps
// fs.ErrNotExist; media errors also wrap the audio and vision packages'
// sentinels (audio.ErrTruncated, vision.ErrNoFrames, ...). Malformed input never
// causes a panic; a panic inside the NumPy header parser is recovered and
// reported as an error naming the file.
package data
