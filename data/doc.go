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
// alone does much worse, with an imbalance that differs between classes.
// It exists so that the modality-imbalance methods have something to act
// on without any download, and so that tests run in milliseconds.
//
// [LoadNPZ] reads precomputed feature vectors (for example pooled encoder
// outputs of CREMA-D or AVE clips) from NumPy .npz archives, one array per
// modality plus labels and optional owner groups. [LoadMfeat] reads the UCI
// Multiple Features digits, six views of very different strength, of which
// a strong/weak pair such as fac + zer shows modality imbalance on real data.
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
// [Synthetic] is the one exception in form only: it takes the seed in its
// configuration and derives separate streams from it for the class
// prototypes, the training set and the test set.
//
// # Errors
//
// Errors name what failed and where: the file, the array or line and
// column, the modality and row. Problems inside input files are reported as
// [*ParseError]. Errors wrap sentinels ([ErrShape], [ErrLabel],
// [ErrNonFinite], [ErrUnknownModality], [ErrFormat], [ErrInfeasible]) for
// errors.Is, and a missing file wraps fs.ErrNotExist. Malformed input never
// causes a panic; a panic inside the NumPy header parser is recovered and
// reported as an error naming the file.
package data
