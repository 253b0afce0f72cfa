package extract

/*
#cgo LDFLAGS: -lpthread
#include <stddef.h>
int imgvec_run_on_big_stack(size_t stack_bytes);
*/
import "C"

import (
	"fmt"
	"sync"
	"syscall"
)

// bigStackBytes is the stack of the thread that creates the ONNX Runtime
// environment. Creating it recurses over the process's command line (about
// 100 bytes of stack per byte of arguments: ONNX Runtime 1.30 crashed with
// SIGSEGV on an 8 MiB stack from ~28 KB of arguments, e.g. `imgvec embed
// dir/*.jpg` over a thousand files). Linux allows at most a quarter of the
// stack limit (2 MiB by default) of arguments, so 256 MiB covers any
// command line; only the pages the recursion touches are used.
const bigStackBytes = 256 << 20

var bigStack struct {
	mu sync.Mutex
	fn func() // what imgvecRunOnBigStack runs; set while runOnBigStack waits
}

//export imgvecRunOnBigStack
func imgvecRunOnBigStack() { bigStack.fn() }

// runOnBigStack runs fn on a new OS thread whose stack is stackBytes, and
// returns when fn has returned. The C code fn calls through cgo runs on
// that thread's stack (a thread created outside Go keeps its own stack as
// the system stack of the Go calls it makes).
func runOnBigStack(stackBytes int, fn func()) error {
	bigStack.mu.Lock()
	defer bigStack.mu.Unlock()
	bigStack.fn = fn
	defer func() { bigStack.fn = nil }()
	if rc := C.imgvec_run_on_big_stack(C.size_t(stackBytes)); rc != 0 {
		return fmt.Errorf("start a thread with a %d MiB stack: %w", stackBytes>>20, syscall.Errno(rc))
	}
	return nil
}
