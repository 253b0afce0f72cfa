package extract

/*
#cgo LDFLAGS: -ldl
#include <dlfcn.h>
#include <stdlib.h>

static void *imgvec_dlopen_global(const char *path) { return dlopen(path, RTLD_NOW | RTLD_GLOBAL); }
*/
import "C"

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"unsafe"
)

var preloaded sync.Once

// preloadGPULibraries loads, RTLD_GLOBAL, the NVIDIA libraries (CUDA
// runtime, cuBLAS, cuDNN, ...) that `make setup-gpu` unpacks beside the
// ONNX Runtime library, so that its CUDA provider finds them by soname
// without LD_LIBRARY_PATH. Libraries that need another are retried until no
// more load; a folder without them (the CPU build) loads nothing.
func preloadGPULibraries() {
	preloaded.Do(func() {
		lib, err := LibraryPath()
		if err != nil {
			return
		}
		entries, err := os.ReadDir(filepath.Dir(lib))
		if err != nil {
			return
		}
		var todo []string
		for _, e := range entries {
			n := e.Name()
			if strings.Contains(n, ".so") && (strings.HasPrefix(n, "libcu") || strings.HasPrefix(n, "libnvrtc") || strings.HasPrefix(n, "libnvJitLink")) {
				todo = append(todo, filepath.Join(filepath.Dir(lib), n))
			}
		}
		for progress := true; progress && len(todo) > 0; {
			progress = false
			var left []string
			for _, p := range todo {
				cp := C.CString(p)
				h := C.imgvec_dlopen_global(cp)
				C.free(unsafe.Pointer(cp))
				if h == nil {
					left = append(left, p)
					continue
				}
				progress = true
			}
			todo = left
		}
	})
}
