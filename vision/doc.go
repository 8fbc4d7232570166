// Package vision turns images into the float32 tensors that fedcmi's visual
// encoders take: it decodes JPEG and PNG frames and MNIST-style IDX files,
// applies the torchvision augmentations of the FedCMI reference code
// (random resized crop, horizontal flip, normalisation) and their
// evaluation counterparts, and loads the frames of a video clip from a
// folder.
//
// # Images
//
// An [Image] is a C x H x W float32 tensor in CHW order (channel-major,
// then rows, then columns), the layout of torchvision's ToTensor and of the
// model's convolution inputs. Decoded images hold values in [0, 1]: 8-bit
// samples divided by 255, 16-bit ones by 65535. Functions never modify an
// Image they are given and return new ones, so an image can be shared
// between goroutines and pipelines as long as nobody writes to its Pix.
//
// # Decoding
//
// [Decode] and [DecodeFile] read JPEG and PNG with the standard library's
// image/jpeg and image/png, chosen by the file's signature rather than by
// its name or by whatever formats other packages of the program register
// with package image. Other formats are refused by name (GIF, BMP, WebP,
// TIFF...) with [ErrFormat]. The header is read first, with
// image.DecodeConfig's logic, and an image above [MaxPixels] (50
// megapixels) is refused with [ErrTooLarge] before its pixels are
// decoded; a [Decoder] can set a lower limit. The bytes consumed by the
// header are replayed to the full decoder, so any io.Reader works, without
// seeking and without reading the input twice.
//
// The number of channels is the caller's choice: 1 (grey), 3 (RGB) or 0 for
// the image's own (1 for grey images, including paletted ones with a grey
// palette, 3 for the rest). Grey becomes RGB by repetition; colour becomes
// grey by its BT.601 luma 0.299R + 0.587G + 0.114B, as PIL's convert("L")
// computes it (for JPEG, whose pixels are stored as YCbCr, the stored luma
// Y is used directly). Alpha is discarded, keeping the straight colour as
// PIL's convert("RGB") does. [FromImage] applies the same conversion to an
// image.Image decoded elsewhere.
//
// # Transforms and pipelines
//
// The transforms follow torchvision's definitions, so that models and
// hyperparameters carry over from the reference code:
//
//   - [Image.Resize] and [Resize]: bilinear resampling with PIL's filter (a
//     triangle kernel on pixel centres, widened by the scale factor when
//     shrinking, so that shrinking averages every input pixel instead of
//     aliasing). This is torchvision's resize of PIL images and of tensors
//     with antialias=True.
//   - [Image.ResizeShorter] and [ResizeShorter]: torchvision's Resize(int),
//     shorter side to the size and the longer one to
//     floor(size*longer/shorter).
//   - [CenterCrop]: torchvision's offsets, with Python's round-half-to-even,
//     and zero padding for crops larger than the image.
//   - [RandomResizedCrop]: torchvision's get_params step for step (area
//     fraction uniform in (0.08, 1), aspect ratio log-uniform in (3/4,
//     4/3), 10 attempts, then a centred fallback), then crop and resize in
//     one pass. [RandomResizedCrop.Params] exposes the drawn region.
//   - [RandomHorizontalFlip] with probability P, and [Normalize] per channel
//     with the ImageNet constants ([ImageNetMeanR] and so on) by default.
//
// A [Pipeline] chains [Transform] values. [TrainPipeline] is the reference
// training augmentation (random resized crop, flip with probability 0.5,
// ImageNet normalisation) and [EvalPipeline] the usual evaluation transform
// (shorter side resized, centre crop, normalisation), both to a square
// size: 224 in the reference, 28 to 64 pixels for CPU-sized models. Each
// transform is also a plain value, so other compositions are literals, such
// as Pipeline{Resize{H: 64, W: 64}, ImageNetNormalize()}, the reference's
// own evaluation transform.
//
// # IDX files
//
// [ReadIDX] reads the IDX format of MNIST and its relatives, plain or
// gzip-compressed (recognised by the gzip signature 1F 8B, not by the file
// name), with all six element types; [ReadMNISTImages], [ReadMNISTLabels]
// and [LoadMNIST] check the shapes that MNIST files have and convert them.
// The header is never trusted for allocation: sizes above [MaxIDXBytes]
// are refused outright, and the payload buffer grows only as data arrives,
// so a 20-byte file that claims four gigabytes costs kilobytes. A file must
// hold exactly what its header declares: truncation reports the expected
// and received byte counts, and trailing bytes are an error rather than
// silently ignored, because they usually mean a wrong header.
//
// # Frame folders
//
// Audio-visual data sets such as CREMA-D and AVE are prepared as one folder
// of extracted frames per clip. [LoadFrames] lists the folder's JPEG and
// PNG files ([FrameFiles]), sorted by name with numbers by value
// (frame_2 before frame_10), takes the first k as the
// reference code does, repeats the last when there are fewer than k, and
// decodes them. The transforms are applied by the caller, per frame; a
// pipeline given a fresh generator per frame draws independent crops, as
// the reference does, while generators created with the same seed give
// every frame of a clip the same crop and flip.
//
// # Randomness
//
// There is no package-level state. Random transforms draw from a
// *rand.Rand (math/rand/v2) passed to Apply; the same seed gives the same
// augmentations. A *rand.Rand is not safe for concurrent use, so give each
// goroutine its own.
//
// # Errors and limits
//
// Every error is an [*Error], whose message starts with "vision: " and the
// file or folder concerned, when there is one, and which wraps a sentinel
// ([ErrFormat], [ErrCorrupt], [ErrTruncated], [ErrTooLarge], [ErrInvalid],
// [ErrNoFrames]) or the file system's error, for errors.Is. No input, file
// or argument makes the package panic, and none makes it allocate much
// more than the limits [MaxPixels], [MaxIDXBytes] and [MaxFrames] imply;
// FuzzDecode and FuzzReadIDX check this. As a last guard, a panic inside
// the standard library's image decoders is recovered and reported as
// [ErrCorrupt].
//
// # Differences from the reference
//
// Results match torchvision on PIL images closely but not bit for bit.
// PIL's decoders (libjpeg) and Go's differ in the inverse DCT and in chroma
// upsampling (libjpeg interpolates chroma, image/jpeg repeats it), which
// moves JPEG pixels by a few levels out of 255; PNG decoding is exact. PIL
// resamples 8-bit images and rounds to 8 bits after each axis, whereas this
// package resamples in float32 without rounding, a difference below 1/255.
// The random draws use math/rand/v2, not torch's generator, so the same
// seed gives different crops than in PyTorch; their distribution is the
// same.
//
// # Dependencies
//
// Only the standard library. golang.org/x/image/draw was considered for
// resizing: its BiLinear kernel scaler computes the same filter as PIL
// (half-pixel centres, support widened when shrinking), but it reads and
// writes 8- and 16-bit image.Image values, so every crop of a float tensor
// would need a round trip through integer pixels and an extra copy, and
// normalised tensors (negative values) could not be resized at all. The
// filter is some sixty lines of Go here, operates on the tensors of any
// channel count directly, and crops and resizes in one pass, so the module
// gains no dependency for it.
package vision
