package models

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/imgvec/imgvec/extract/onnxgraph"
)

// Default is the preset used when none is named.
const Default = "vgg19-fc7"

// ImageNet normalisation, applied after scaling pixels to [0, 1].
var (
	ImageNetMean = [3]float32{0.485, 0.456, 0.406}
	ImageNetStd  = [3]float32{0.229, 0.224, 0.225}
)

// Preset names a downloadable model and the layer to read from it.
type Preset struct {
	Name        string
	Description string
	URL         string
	// SHA256 is the hex sha256 of the download. Empty means no trusted hash
	// is known: Fetch then needs one from the caller, or InsecureSkipVerify.
	SHA256    string
	Size      int64 // download size in bytes; 0 = unknown
	Layer     string
	Dim       int // feature width of Layer
	InputSize int // square input side in pixels
	Mean, Std [3]float32
	// Preprocess is the preprocessing recipe (extract/imaging.Recipe) the
	// preset runs with; Pool the pooling of a token output ("" = none).
	Preprocess string
	Pool       string
}

// vgg19 is the preset "vgg19-<layer>": layer (fc6 or fc7, each 4096-d
// after its ReLU) of one download, vgg19-7.onnx, so every other field is
// the same for both and is written once here.
//
// vgg19-7.onnx: the ONNX Model Zoo's VGG19 converted from MXNet (IR 3, opset
// 7). Its size, 574677321 bytes, is from the xetdata/onnx-models mirror's
// pointer file; the sha256 of the file was not available where we looked
// (the onnx/models LFS pointer for this path is not in our index), so the
// preset carries none.
func vgg19(layer string) Preset {
	return Preset{
		Name:        "vgg19-" + layer,
		Preprocess:  "imagenet",
		Description: "VGG19 (ONNX Model Zoo vgg19-7), " + layer + " after ReLU, 4096-d",
		URL:         "https://github.com/onnx/models/raw/main/validated/vision/classification/vgg/model/vgg19-7.onnx",
		Size:        574677321,
		Layer:       layer, Dim: 4096, InputSize: 224,
		Mean: ImageNetMean, Std: ImageNetStd,
	}
}

var presets = []Preset{
	vgg19("fc7"),
	vgg19("fc6"),
	{
		// sha256 and size from the Git LFS pointer of
		// onnx/models vision/classification/resnet/model/resnet50-v2-7.onnx
		// (moved unchanged to validated/ later).
		Name:        "resnet50-avgpool",
		Preprocess:  "imagenet",
		Description: "ResNet50 v2 (ONNX Model Zoo resnet50-v2-7), global average pool, 2048-d",
		URL:         "https://github.com/onnx/models/raw/main/validated/vision/classification/resnet/model/resnet50-v2-7.onnx",
		SHA256:      "1e80e8a7c8eec8e8b20c440d7dd7f2f8590779c7c2859dc4514870dc463845d3",
		Size:        102442450,
		Layer:       "avgpool", Dim: 2048, InputSize: 224,
		Mean: ImageNetMean, Std: ImageNetStd,
	},
}

// Presets lists the known presets.
func Presets() []Preset { return append([]Preset(nil), presets...) }

// Lookup finds a preset by name.
func Lookup(name string) (Preset, bool) {
	for _, p := range presets {
		if p.Name == name {
			return p, true
		}
	}
	return Preset{}, false
}

// Errors Fetch wraps, for errors.Is.
var (
	ErrHashMismatch = errors.New("sha256 mismatch")
	ErrNoChecksum   = errors.New("no sha256 to verify the download against")
	ErrTooLarge     = errors.New("download exceeds the size limit")
	ErrHTTPStatus   = errors.New("unexpected HTTP status")
)

// DefaultMaxBytes caps a download unless Options.MaxBytes says otherwise.
const DefaultMaxBytes int64 = 2 << 30

// Options tune FetchWith. The zero value is usable.
type Options struct {
	// SHA256 is the expected hex sha256 of the download. Defaults to the
	// preset's. Without one, Fetch refuses unless InsecureSkipVerify.
	SHA256 string
	// InsecureSkipVerify downloads and uses a model without a hash to check.
	InsecureSkipVerify bool
	// CacheDir holds downloads and cut models. Defaults to DefaultCacheDir().
	CacheDir string
	// Layer to cut to. Defaults to the preset's layer, or "fc7" for a URL.
	Layer string
	// MaxBytes caps the download. Defaults to DefaultMaxBytes.
	MaxBytes int64
	// Client makes the request. Defaults to http.DefaultClient.
	Client *http.Client
}

// Result says what FetchWith produced.
type Result struct {
	Path       string          // the cut model, ready for ONNX Runtime
	Source     string          // the downloaded, uncut model
	SHA256     string          // hex sha256 of the download ("" if reused unverified)
	Layer      onnxgraph.Layer // the layer that is the cut model's output
	Downloaded bool            // false when the download came from the cache
}

// DefaultCacheDir is $IMGVEC_CACHE_DIR if set, else
// os.UserCacheDir()/imgvec/models.
func DefaultCacheDir() (string, error) {
	if d := os.Getenv("IMGVEC_CACHE_DIR"); d != "" {
		return d, nil
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("model cache directory: %w (set IMGVEC_CACHE_DIR)", err)
	}
	return filepath.Join(d, "imgvec", "models"), nil
}

// Fetch downloads a preset's model (or the model at an http(s) URL), checks
// its sha256, cuts it to the preset's layer (fc7 for a URL) and returns the
// path of the cut model. sha256 overrides the preset's hash; cacheDir ""
// means DefaultCacheDir(). See FetchWith.
func Fetch(ctx context.Context, presetOrURL, sha256 string, cacheDir string) (string, error) {
	r, err := FetchWith(ctx, presetOrURL, Options{SHA256: sha256, CacheDir: cacheDir})
	return r.Path, err
}

var hexRE = regexp.MustCompile(`^[0-9a-f]{64}$`)

// FetchWith is Fetch with options.
//
// The download streams into a temporary file in the cache directory while
// its sha256 is computed; only a complete file with the expected hash is
// renamed into place (<name>-<sha256 prefix>.onnx), so the cache never holds
// a partial or unverified file under a verified name, and a later call
// reuses it without a request. The cut model is cached beside it
// (<download name>.<layer>.cut<N>.onnx) and reused likewise. Cancelling ctx
// stops the download and removes the partial file.
func FetchWith(ctx context.Context, presetOrURL string, o Options) (Result, error) {
	p, ok := Lookup(presetOrURL)
	if !ok {
		u, err := url.Parse(presetOrURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			names := make([]string, len(presets))
			for i, p := range presets {
				names[i] = p.Name
			}
			return Result{}, fmt.Errorf("fetch %q: not a preset (%s) or an http(s) URL", presetOrURL, strings.Join(names, ", "))
		}
		p = Preset{Name: presetOrURL, URL: presetOrURL, Layer: "fc7"}
	}
	if o.Layer == "" {
		o.Layer = p.Layer
	}
	want := strings.ToLower(strings.TrimSpace(o.SHA256))
	if want == "" {
		want = p.SHA256
	}
	if want != "" && !hexRE.MatchString(want) {
		return Result{}, fmt.Errorf("fetch %s: sha256 %q is not 64 hex digits", p.Name, o.SHA256)
	}
	if want == "" && !o.InsecureSkipVerify {
		return Result{}, fmt.Errorf("fetch %s: %w for %s: pass --sha256 HEX, or --insecure-skip-verify to use it unverified", p.Name, ErrNoChecksum, p.URL)
	}
	if o.CacheDir == "" {
		d, err := DefaultCacheDir()
		if err != nil {
			return Result{}, fmt.Errorf("fetch %s: %w", p.Name, err)
		}
		o.CacheDir = d
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = DefaultMaxBytes
	}
	if o.Client == nil {
		o.Client = http.DefaultClient
	}
	if err := os.MkdirAll(o.CacheDir, 0o755); err != nil {
		return Result{}, fmt.Errorf("fetch %s: create cache directory: %w", p.Name, err)
	}

	base := baseName(p.URL)
	var src string
	if want != "" {
		src = filepath.Join(o.CacheDir, fmt.Sprintf("%s-%s.onnx", base, want[:16]))
	} else {
		uh := sha256.Sum256([]byte(p.URL))
		src = filepath.Join(o.CacheDir, fmt.Sprintf("%s-unverified-url-%s.onnx", base, hex.EncodeToString(uh[:8])))
	}
	res := Result{Source: src, SHA256: want}
	if _, err := os.Stat(src); err != nil {
		got, err := download(ctx, o.Client, p.URL, src, want, o.MaxBytes, p.Size)
		if err != nil {
			return Result{}, fmt.Errorf("fetch %s: %w", p.Name, err)
		}
		res.SHA256, res.Downloaded = got, true
	}

	res.Path = strings.TrimSuffix(src, ".onnx") + "." + safeName(o.Layer) + cutVersion + ".onnx"
	if l, ok := readSidecar(res.Path); ok && !res.Downloaded {
		res.Layer = l
		return res, nil
	}
	l, err := cutFile(src, res.Path, o.Layer)
	if err != nil {
		if want == "" && (errors.Is(err, onnxgraph.ErrNotONNX) || errors.Is(err, onnxgraph.ErrTruncated)) {
			os.Remove(src) // an unverified download that is not a model must not be reused
		}
		return Result{}, fmt.Errorf("fetch %s: %w", p.Name, err)
	}
	res.Layer = l
	if ok {
		if err := writeAtomic(presetLink(o.CacheDir, p.Name, o.Layer), []byte(res.Path+"\n")); err != nil {
			return Result{}, fmt.Errorf("fetch %s: record cached path: %w", p.Name, err)
		}
	}
	return res, nil
}

// presetLink is the file that records where a preset's cut model lies, so
// that later runs find it without knowing the hash it was fetched with.
func presetLink(cacheDir, preset, layer string) string {
	return filepath.Join(cacheDir, "preset-"+safeName(preset)+"."+safeName(layer)+".path")
}

// Cached returns the path of the cut model a successful Fetch of preset
// (cut to layer, "" for the preset's own) left in cacheDir.
func Cached(cacheDir, preset, layer string) (string, bool) {
	if layer == "" {
		if p, ok := Lookup(preset); ok {
			layer = p.Layer
		}
	}
	b, err := os.ReadFile(presetLink(cacheDir, preset, layer))
	if err != nil {
		return "", false
	}
	path := strings.TrimSpace(string(b))
	if _, err := os.Stat(path); err != nil {
		return "", false
	}
	return path, true
}

func writeAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// cutVersion names the Cut algorithm in cached file names, so a change to
// it does not reuse old cuts.
const cutVersion = ".cut1"

func baseName(u string) string {
	b := "model"
	if pu, err := url.Parse(u); err == nil {
		if s := path.Base(pu.Path); s != "." && s != "/" {
			b = strings.TrimSuffix(s, ".onnx")
		}
	}
	return safeName(b)
}

func safeName(s string) string {
	s = strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
			return r
		}
		return '_'
	}, s)
	if s == "" || s == "." || s == ".." {
		return "model"
	}
	return s
}

// download GETs u into dst atomically and returns the hex sha256.
func download(ctx context.Context, c *http.Client, u, dst, want string, max, size int64) (got string, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", fmt.Errorf("GET %s: %w", u, err)
	}
	resp, err := c.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return "", fmt.Errorf("GET %s: %w", u, ctx.Err())
		}
		return "", fmt.Errorf("GET %s: %w", u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: HTTP %s: %w", u, resp.Status, ErrHTTPStatus)
	}
	if resp.ContentLength > max {
		return "", fmt.Errorf("GET %s: %d bytes, limit %d: %w", u, resp.ContentLength, max, ErrTooLarge)
	}
	tmp, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".*.partial")
	if err != nil {
		return "", fmt.Errorf("download %s: %w", u, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), io.LimitReader(resp.Body, max+1))
	if err != nil {
		if ctx.Err() != nil {
			return "", fmt.Errorf("download %s: %w", u, ctx.Err())
		}
		return "", fmt.Errorf("download %s into %s after %d bytes: %w", u, filepath.Dir(dst), n, err)
	}
	if n > max {
		return "", fmt.Errorf("download %s: more than %d bytes: %w", u, max, ErrTooLarge)
	}
	if resp.ContentLength >= 0 && n != resp.ContentLength {
		return "", fmt.Errorf("download %s: got %d of %d bytes", u, n, resp.ContentLength)
	}
	got = hex.EncodeToString(h.Sum(nil))
	if want != "" && got != want {
		return "", fmt.Errorf("download %s: %w: got %s, want %s", u, ErrHashMismatch, got, want)
	}
	if want == "" && size > 0 && n != size {
		return "", fmt.Errorf("download %s: %d bytes, expected %d (sha256 %s, unverified)", u, n, size, got)
	}
	if err = tmp.Sync(); err != nil {
		return "", fmt.Errorf("download %s: sync: %w", u, err)
	}
	if err = tmp.Close(); err != nil {
		return "", fmt.Errorf("download %s: close: %w", u, err)
	}
	if err = os.Rename(tmp.Name(), dst); err != nil {
		return "", fmt.Errorf("download %s: %w", u, err)
	}
	return got, nil
}

// cutFile cuts src to layer into dst atomically, with a sidecar that
// records the layer.
func cutFile(src, dst, layer string) (l onnxgraph.Layer, err error) {
	data, err := os.ReadFile(src)
	if err != nil {
		return l, fmt.Errorf("read model: %w", err)
	}
	m, err := onnxgraph.Parse(data)
	if err != nil {
		return l, fmt.Errorf("%s: %w", src, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".*.partial")
	if err != nil {
		return l, fmt.Errorf("cut model: %w", err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	bw := bufio.NewWriterSize(tmp, 1<<20)
	if l, err = m.CutTo(bw, layer); err != nil {
		return l, fmt.Errorf("cut %s to %s: %w", src, layer, err)
	}
	if err = bw.Flush(); err != nil {
		return l, fmt.Errorf("write cut model: %w", err)
	}
	if err = tmp.Sync(); err != nil {
		return l, fmt.Errorf("write cut model: %w", err)
	}
	if err = tmp.Close(); err != nil {
		return l, fmt.Errorf("write cut model: %w", err)
	}
	if err = os.Rename(tmp.Name(), dst); err != nil {
		return l, fmt.Errorf("write cut model: %w", err)
	}
	if err := writeSidecar(dst, l); err != nil {
		return l, err
	}
	return l, nil
}

func writeSidecar(model string, l onnxgraph.Layer) error {
	b, err := json.Marshal(l)
	if err != nil {
		return err
	}
	tmp := model + ".json.partial"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("write layer record: %w", err)
	}
	if err := os.Rename(tmp, model+".json"); err != nil {
		return fmt.Errorf("write layer record: %w", err)
	}
	return nil
}

func readSidecar(model string) (onnxgraph.Layer, bool) {
	var l onnxgraph.Layer
	if _, err := os.Stat(model); err != nil {
		return l, false
	}
	b, err := os.ReadFile(model + ".json")
	if err != nil || json.Unmarshal(b, &l) != nil || l.Tensor == "" {
		return l, false
	}
	return l, true
}
