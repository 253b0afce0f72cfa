package schema

import (
	"errors"
	"fmt"
)

// FailureClass classifies why one item could not be turned into a vector.
// Classes are stable strings: they are stored in the failure ledger and used
// as metric labels.
type FailureClass string

const (
	// FailEmpty: the input has zero bytes.
	FailEmpty FailureClass = "empty"
	// FailTruncated: the input ends before the image data does.
	FailTruncated FailureClass = "truncated"
	// FailDecode: the bytes claim a supported format but cannot be decoded.
	FailDecode FailureClass = "decode"
	// FailUnsupportedFormat: the bytes are not an image format imgvec reads
	// (SVG, HEIC, text with an image extension, ...).
	FailUnsupportedFormat FailureClass = "unsupported_format"
	// FailTooLarge: the image exceeds the configured pixel or byte budget.
	FailTooLarge FailureClass = "too_large"
	// FailIO: reading the item from its source failed.
	FailIO FailureClass = "io"
	// FailInfer: the model rejected this input (found by bisecting a batch).
	FailInfer FailureClass = "infer"
	// FailNonFinite: the model produced NaN or Inf for this input.
	FailNonFinite FailureClass = "non_finite"
	// FailInvalidKey: the source listed a key that is not valid UTF-8. The
	// item is not read; its ledger entry holds EscapeKey(key) under the id
	// of the raw key, so the next run finds it as a known failure.
	FailInvalidKey FailureClass = "invalid_key"
	// FailGone: the source says the item is gone for good (HTTP 404 or
	// 410). Gone on two consecutive runs, it is deleted (within
	// --max-delete).
	FailGone FailureClass = "gone"
	// FailOptedOut: a policy skip, not an error. The source says the
	// item must not be used for AI (a URL whose server answers
	// X-Robots-Tag noai or noimageai, also scoped as "imgvec: noai", or
	// tdm-reservation: 1). It is recorded in the ledger like a failure
	// (so the next run knows it) but counted as Run.Skipped, not
	// Run.Failed.
	FailOptedOut FailureClass = "opted_out"
)

// PolicySkip reports whether items of class c were skipped by policy
// (FailOptedOut) rather than failed: they count as Run.Skipped, and a
// run whose only problems are policy skips is RunOK.
func (c FailureClass) PolicySkip() bool { return c == FailOptedOut }

// ItemError is a per-item failure: it names the item, the pipeline stage and
// a class. It never fails a batch or a run; callers record it in the ledger.
type ItemError struct {
	Item   string       // source key or path of the item
	Stage  string       // "read", "decode", "preprocess", "infer", ...
	Class  FailureClass // stable classification
	Reason string       // human-readable detail, never containing secrets
	Err    error        // underlying cause, may be nil
}

func (e *ItemError) Error() string {
	msg := fmt.Sprintf("%s %s: %s: %s", e.Stage, e.Item, e.Class, e.Reason)
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *ItemError) Unwrap() error { return e.Err }

// ClassOf returns the failure class of err if it is (or wraps) an *ItemError,
// and "" otherwise.
func ClassOf(err error) FailureClass {
	var ie *ItemError
	if errors.As(err, &ie) {
		return ie.Class
	}
	return ""
}
