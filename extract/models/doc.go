// Package models knows where imgvec's feature extractors come from and
// fetches them: named presets (vgg19-fc7, the default; vgg19-fc6;
// resnet50-avgpool) give a download URL, the expected sha256 of the
// download, the layer to read, its width, the input size and the ImageNet
// mean/std the model expects.
//
// Fetch / FetchWith download a preset's model or any http(s) URL into a
// cache directory ($IMGVEC_CACHE_DIR, else os.UserCacheDir()/imgvec/models),
// cut it to the layer with onnxgraph.Cut, cache the cut model beside the
// download and return its path. Contracts:
//
//   - Verification: the download is hashed while it streams; a file whose
//     sha256 differs from the expected one is deleted and the error (wrapping
//     ErrHashMismatch) shows both hashes. When no hash is known — the
//     vgg19-7.onnx presets carry none, because its published sha256 could not
//     be confirmed — Fetch fails with ErrNoChecksum unless the caller passes
//     a hash (--sha256) or sets InsecureSkipVerify (--insecure-skip-verify);
//     an unverified download is cached under a name that says so.
//   - Atomicity: downloads and cut models are written to temporary files in
//     the cache directory and renamed into place only when complete and
//     verified, so concurrent or killed fetches never leave a partial file
//     under a final name. A cached file is reused without any request.
//   - Limits: MaxBytes (default 2 GiB) caps a download; non-200 responses
//     fail with ErrHTTPStatus and the status text; cancelling the context
//     stops the transfer and removes the partial file.
//   - Cut models are named after the download, the layer and the cut
//     algorithm's version, so a change to either never reuses a stale cut.
package models
