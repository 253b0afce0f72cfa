package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Range is the declared range of a numeric setting. A config key and the
// flag of the same setting share one Range, so the file and the command
// line accept the same values. The maxima keep one run from exhausting a
// shared machine (memory, threads) while staying generous for real use.
type Range[T int | int64 | time.Duration] struct{ Min, Max T }

// The ranges of every numeric setting. A minimum of 0 where the setting's
// default is "number of CPUs" keeps 0 meaning that default.
var (
	// BatchRange (batch, --batch): images per inference batch; a batch of
	// VGG19 input is 0.6 MB per image before activations.
	BatchRange = Range[int]{1, 512}
	// ThreadsRange (threads, --threads): ONNX Runtime intra-op threads.
	ThreadsRange = Range[int]{0, 256}
	// WorkersRange (workers, --workers): decode workers.
	WorkersRange = Range[int]{0, 256}
	// MaxBytesRange (max_bytes, --max-bytes): a file is read whole.
	MaxBytesRange = Range[int64]{1, 4 << 30}
	// MaxPixelsRange (max_pixels, --max-pixels): a decoded image takes 4
	// bytes per pixel.
	MaxPixelsRange = Range[int64]{1, 1 << 30}
	// GraceRange (grace, serve.grace, --grace).
	GraceRange = Range[time.Duration]{0, time.Hour}
	// LeaseTTLRange (serve.lease_ttl): a dead runner's job waits this long.
	LeaseTTLRange = Range[time.Duration]{time.Second, time.Hour}
	// S3ConcurrencyRange (s3_concurrency, --s3-concurrency): requests in
	// flight per S3 source, each holding one object in memory.
	S3ConcurrencyRange = Range[int]{1, 1024}
	// URLConcurrencyRange (url_concurrency, --url-concurrency) and
	// URLPerHostRange (url_per_host, --url-per-host): fetches in flight,
	// each holding one image in memory.
	URLConcurrencyRange = Range[int]{1, 1024}
	URLPerHostRange     = Range[int]{1, 256}
	// URLTimeoutRange (url_timeout, --url-timeout): one try of one fetch.
	URLTimeoutRange = Range[time.Duration]{time.Second, time.Hour}
	// SearchKRange (search -k): results per query.
	SearchKRange = Range[int]{1, 10_000}
	// MapLimitRange (map --limit): rows mapped, 0 = all; each holds its
	// key and position in memory.
	MapLimitRange = Range[int]{0, 10_000_000}
	// MapSampleRange (map --sample): rows laid out; the neighbour search
	// grows with its square (about a minute at the maximum on 2 cores).
	MapSampleRange = Range[int]{2, 50_000}
	// MapThumbsRange (map --thumbs): thumbnails read and decoded, each a
	// few kB of the page.
	MapThumbsRange = Range[int]{0, 100_000}
	// MapThumbSizeRange (map --thumb-size): pixels per side.
	MapThumbSizeRange = Range[int]{8, 256}
	// MapNeighboursRange (map --neighbours): listed per point; the layout
	// finds 15 candidates.
	MapNeighboursRange = Range[int]{0, 15}
)

// BatchAuto (batch: auto, --batch auto; Job.Batch 0) lets the extractor
// size batches: extract.DefaultBatch on the CPU, extract.GPUBatch on a GPU,
// halved whenever a batch runs out of device memory.
const BatchAuto = "auto"

// ParseBatch reads a batch size: a whole number in BatchRange, or
// BatchAuto (0).
func ParseBatch(s string) (int, error) {
	if s == BatchAuto {
		return 0, nil
	}
	n, err := BatchRange.Parse(s)
	if err != nil {
		return 0, fmt.Errorf("%v, or %s", err, BatchAuto)
	}
	return n, nil
}

// FormatBatch is the batch size as ParseBatch reads it.
func FormatBatch(n int) string {
	if n == 0 {
		return BatchAuto
	}
	return strconv.Itoa(n)
}

// String is "MIN to MAX".
func (r Range[T]) String() string { return formatLimit(r.Min) + " to " + formatLimit(r.Max) }

func formatLimit[T int | int64 | time.Duration](v T) string {
	if d, ok := any(v).(time.Duration); ok {
		// 1h, not 1h0m0s.
		s := d.String()
		if strings.HasSuffix(s, "m0s") {
			s = strings.TrimSuffix(s, "0s")
		}
		if strings.HasSuffix(s, "h0m") {
			s = strings.TrimSuffix(s, "0m")
		}
		return s
	}
	return strconv.FormatInt(int64(v), 10)
}

// Parse reads a value of the setting and checks its range: a whole number
// (_ allowed between digits, as in YAML) or, for durations, a Go duration
// such as 30s or 1h30m. The error says what is wanted, range included; it
// does not quote s (callers do, as written).
func (r Range[T]) Parse(s string) (T, error) {
	if _, ok := any(r.Min).(time.Duration); ok {
		d, err := time.ParseDuration(s)
		if err != nil || T(d) < r.Min || T(d) > r.Max {
			return 0, fmt.Errorf("want a duration from %s, such as 30s, 5m or 1h30m", r)
		}
		return T(d), nil
	}
	n, err := strconv.ParseInt(strings.ReplaceAll(s, "_", ""), 10, 64)
	if err != nil || n < int64(r.Min) || n > int64(r.Max) {
		return 0, fmt.Errorf("want a whole number from %s", r)
	}
	return T(n), nil
}
