package schema

// Prepared is one decoded and preprocessed image, ready for a batch: what an
// embedder's Prepare makes and its Infer consumes. Its Tensor (or Pixels)
// may come from the embedder's pool; see connector.Embedder for who hands it back.
type Prepared struct {
	Key    string
	Tensor []float32 // 3*H*W, CHW, normalised
	// Pixels replace Tensor for a model that normalises in its graph: the
	// H*W*3 RGB crop (HWC), a quarter of the bytes to send to a device.
	Pixels []byte
	Width  int // decoded width, after EXIF orientation
	Height int
	Format string // "jpeg", "png", ...
}

// VectorResult is the outcome of one image of a batch: a vector (owned by
// the caller once Infer has returned) or a per-item *ItemError.
type VectorResult struct {
	Vector []float32
	Err    error
}
