package extract

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	ort "github.com/yalue/onnxruntime_go"
)

// ORTVersion is the ONNX Runtime release `make setup` installs and the
// onnxruntime_go binding is tested with.
const ORTVersion = "1.30.0"

const ortLibName = "libonnxruntime.so.1"

// ErrNoRuntime is wrapped by every error caused by a missing or unusable
// ONNX Runtime shared library.
var ErrNoRuntime = errors.New("onnx runtime library unavailable")

const installHint = "run `make setup` (installs ONNX Runtime " + ORTVersion +
	" into .cache/onnxruntime) or set IMGVEC_ORT_LIB to the path of libonnxruntime.so"

// LibraryPath finds the ONNX Runtime shared library: $IMGVEC_ORT_LIB if set,
// else $IMGVEC_CACHE_DIR or the user cache dir (imgvec/onnxruntime/VERSION),
// else .cache/onnxruntime/VERSION in the current directory or one of its
// parents (where `make setup` puts it). In each place the CUDA build
// (onnxruntime-gpu/VERSION, where `make setup-gpu` puts it) comes first: it
// runs on the CPU too.
func LibraryPath() (string, error) {
	if p := os.Getenv("IMGVEC_ORT_LIB"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%w: IMGVEC_ORT_LIB=%s: %v; %s", ErrNoRuntime, p, err, installHint)
		}
		return p, nil
	}
	var candidates []string
	if d := cacheDir(); d != "" {
		candidates = append(candidates, libIn(d)...)
	}
	if wd, err := os.Getwd(); err == nil {
		for dir := wd; ; dir = filepath.Dir(dir) {
			candidates = append(candidates, libIn(filepath.Join(dir, ".cache"))...)
			if filepath.Dir(dir) == dir {
				break
			}
		}
	}
	if exe, err := os.Executable(); err == nil {
		// A binary built into ./bin finds the repo's cache next to it.
		candidates = append(candidates, libIn(filepath.Join(filepath.Dir(filepath.Dir(exe)), ".cache"))...)
	}
	for _, c := range candidates {
		if _, err := os.Stat(c); err == nil {
			return c, nil
		}
	}
	return "", fmt.Errorf("%w: %s not found; %s", ErrNoRuntime, ortLibName, installHint)
}

// libIn lists where a cache folder keeps the library: the CUDA build first.
func libIn(cache string) []string {
	return []string{
		filepath.Join(cache, "onnxruntime-gpu", ORTVersion, ortLibName),
		filepath.Join(cache, "onnxruntime", ORTVersion, ortLibName),
	}
}

// cacheDir is imgvec's cache root: $IMGVEC_CACHE_DIR or <user cache>/imgvec.
func cacheDir() string {
	if d := os.Getenv("IMGVEC_CACHE_DIR"); d != "" {
		return d
	}
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "imgvec")
	}
	return ""
}

var runtimeInit struct {
	once sync.Once
	err  error
}

// InitRuntime loads the ONNX Runtime library and creates its process-global
// environment, once per process, on a thread with a large stack (see
// bigStackBytes). Later calls return the first call's result.
func InitRuntime() error {
	runtimeInit.once.Do(func() {
		path, err := LibraryPath()
		if err != nil {
			runtimeInit.err = err
			return
		}
		ort.SetSharedLibraryPath(path)
		var initErr error
		if err := runOnBigStack(bigStackBytes, func() {
			initErr = ort.InitializeEnvironment(ort.WithLogLevelError())
		}); err != nil {
			runtimeInit.err = fmt.Errorf("%w: load %s: %w", ErrNoRuntime, path, err)
			return
		}
		if initErr != nil {
			runtimeInit.err = fmt.Errorf("%w: load %s: %v; %s", ErrNoRuntime, path, initErr, installHint)
		}
	})
	return runtimeInit.err
}

// RuntimeVersion is the version the loaded ONNX Runtime library reports
// (after InitRuntime).
func RuntimeVersion() string { return ort.GetVersion() }
