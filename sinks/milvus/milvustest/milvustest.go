// Package milvustest names the Milvus servers the integration tests run
// against, both started by `make services` (.ci/services/): the Milvus
// standalone server and Milvus Lite, whose gRPC API is a reimplementation
// that differs in places (see the sink's compat.go). Tests that exercise
// the sink's use of the Milvus API run on each; tests of what only a real
// Milvus has (its request limit, a private server to SIGKILL) use
// Standalone alone.
package milvustest

import (
	"os"
	"testing"

	"github.com/imgvec/imgvec/schema/testenv"
)

// Server is one test server: its subtest name, the variable holding its
// address (from .cache/services.env) and the script that starts it.
type Server struct {
	Name, Env, Script string
}

var (
	// Standalone is Milvus 2.3.5 standalone from the pinned `milvus` wheel.
	Standalone = Server{Name: "milvus-2.3.5", Env: "IMGVEC_TEST_MILVUS_ADDR", Script: ".ci/services/milvus.sh"}
	// Lite is Milvus Lite 3.2.2 (pure Python) from the pinned
	// `milvus-lite` wheel.
	Lite = Server{Name: "milvus-lite-3.2.2", Env: "IMGVEC_TEST_MILVUS_LITE_ADDR", Script: ".ci/services/milvus-lite.sh"}
	// Servers are the servers every test of the sink's API use runs on.
	Servers = []Server{Standalone, Lite}
)

// Addr returns the server's address, or skips t (fails it under CI)
// when the variable is unset.
func (s Server) Addr(t testing.TB) string {
	t.Helper()
	addr := os.Getenv(s.Env)
	if addr == "" {
		testenv.Skip(t, "%s is not set: start %s with `make services` (or `%s start`) and source .cache/services.env", s.Env, s.Name, s.Script)
	}
	return addr
}

// Each runs fn once per server in Servers, as a subtest named after it,
// with the server's address.
func Each(t *testing.T, fn func(t *testing.T, addr string)) {
	t.Helper()
	for _, s := range Servers {
		t.Run(s.Name, func(t *testing.T) { fn(t, s.Addr(t)) })
	}
}
