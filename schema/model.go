package schema

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
)

// ModelIdentity says exactly which computation produced a vector: the bytes
// of the ONNX model that ran, the layer read from it, the preprocessing, the
// output dimension and whether vectors were L2-normalised. Two vectors are
// comparable only if their identities have the same ID.
type ModelIdentity struct {
	ModelSHA256 string // hex sha256 of the exact ONNX bytes given to ONNX Runtime
	Layer       string // output layer, e.g. "fc7", or a tensor name
	Pool        string // pooling of a token output ("cls", "mean"); "" when none
	Preprocess  string // preprocessing version, e.g. "torchvision-resize256-crop224-v1"
	Dim         int    // vector dimension read from the model
	Normalized  bool   // vectors were L2-normalised
}

// ID is a short stable identifier derived from every field. It is stored on
// every row; rows with another ID are stale.
// Pool enters the hash only when set, so identities from before pooling
// existed keep their ID.
func (m ModelIdentity) ID() string {
	s := fmt.Sprintf("%s\n%s\n%s\n%d\n%t", m.ModelSHA256, m.Layer, m.Preprocess, m.Dim, m.Normalized)
	if m.Pool != "" {
		s += "\npool " + m.Pool
	}
	h := sha256.Sum256([]byte(s))
	return m.Layer + "-" + hex.EncodeToString(h[:8])
}

// Validate reports a missing or impossible field.
func (m ModelIdentity) Validate() error {
	switch {
	case len(m.ModelSHA256) != 64:
		return fmt.Errorf("model identity: sha256 %q is not 64 hex digits", m.ModelSHA256)
	case m.Layer == "":
		return fmt.Errorf("model identity: empty layer")
	case m.Preprocess == "":
		return fmt.Errorf("model identity: empty preprocessing version")
	case m.Dim <= 0:
		return fmt.Errorf("model identity: dimension %d", m.Dim)
	}
	return nil
}
