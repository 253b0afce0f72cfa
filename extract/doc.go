// Package extract turns image bytes into feature vectors (VGG19 fc7 by
// default) with ONNX Runtime.
//
// # Pieces
//
//   - LoadModel resolves a preset (cached by `imgvec model fetch`) or an
//     .onnx file and makes the requested layer — an alias (fc7, pool5, ...)
//     or any tensor name — the graph output, cutting the model in memory
//     with extract/onnxgraph when needed (ONNX Runtime returns graph
//     outputs only); a token output [N, T, D] is pooled in the graph
//     (LoadOptions.Pool), [N, C, 1, 1] flattened. Model.SHA256 hashes the
//     exact bytes that run and any external data files; with the layer,
//     the pooling, the preprocessing version and normalisation it forms the
//     schema.ModelIdentity stamped on every vector. External weights stay
//     in their files: the Session tells ONNX Runtime their directory
//     (Model.DataDir), so they load from any working directory, once.
//     A model folder (Hugging Face / Optimum: model.onnx and
//     preprocessor_config.json) sets the preprocessing from its config;
//     LoadOptions.Preprocess (a recipe or a config path) overrides it.
//   - Session wraps one onnxruntime_go DynamicAdvancedSession with a
//     dynamic batch dimension, on CPU (default), CUDA (TF32 unless
//     SessionOptions.NoTF32) or TensorRT. An Extractor on several devices
//     (Options.Devices) opens one Session per device and runs each call on
//     whichever is free.
//   - Extractor combines extract/imaging (decode + Pillow/torchvision/
//     transformers-exact preprocessing) with a Session; the model input
//     must be the preprocessing's output size. With Options.PixelUpload
//     the model is rewritten to take the uint8 crop and normalise it in
//     the graph (onnxgraph.PixelInput with imaging.Spec.Levels): Prepared
//     carries Pixels instead of Tensor, and the vectors are bit-identical.
//
// # Runtime
//
// The ONNX Runtime environment is process-global: InitRuntime loads the
// shared library once (see LibraryPath for where it is looked for) and every
// Session shares it. A missing or unloadable library is one error wrapping
// ErrNoRuntime that says how to install it. A device whose execution
// provider the library lacks fails NewSession with a message saying so.
//
// # Concurrency and ownership
//
//   - Extractor.Prepare is safe for concurrent use (the pipeline runs N
//     decode workers). The returned Prepared holds a pooled tensor; hand it
//     back with Release exactly once, after Infer.
//   - Extractor.Infer and Session.Run are safe for concurrent use, so one
//     Extractor (one copy of the weights) serves every job that uses its
//     model (`imgvec serve` shares it). ONNX Runtime runs one session
//     concurrently; each call has its own input buffer, tensors and run
//     options, and keeps nothing after it returns. Cancelling ctx
//     terminates that call's run in flight (its own RunOptions.Terminate),
//     never another call's, and Infer returns the context's error.
//   - The creator of an Extractor or Session closes it, once no call is in
//     flight.
//
// # Errors
//
// Per-item problems are *schema.ItemError values and never fail a batch:
// decode/preprocess errors come from Prepare; Infer bisects a batch that
// fails inside the model until the failing inputs stand alone (class
// "infer"), and checks every vector is finite (class "non_finite"). A run
// that fails with ErrOutOfMemory is retried in halves, and the Extractor's
// later runs stay at the size that fitted. An error returned by Infer
// itself (cancellation, a broken session, a device that cannot hold one
// image) is fatal.
// Vectors are L2-normalised unless Options.NoNormalize is set; an all-zero
// activation stays all zero.
package extract
