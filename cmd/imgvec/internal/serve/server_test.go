package serve

import (
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/imgvec/imgvec/cmd/imgvec/internal/config"
)

func TestLoopback(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:9464": true, "[::1]:9464": true, "localhost:9464": true,
		"0.0.0.0:9464": false, ":9464": false, "10.1.2.3:9464": false, "example.com:80": false, "nonsense": false,
	} {
		if got := loopback(addr); got != want {
			t.Errorf("loopback(%q) = %v, want %v", addr, got, want)
		}
	}
}

func testServeConfig(t *testing.T, listen string) *config.File {
	t.Helper()
	yaml := "jobs:\n  - name: photos\n    source: " + t.TempDir() + "\n    sink: sqlite://" + filepath.Join(t.TempDir(), "x.db") +
		"\n    model: " + filepath.Join("..", "..", "..", "..", "testdata", "models", "vgg19-tiny.onnx") + "\n    schedule: '@every 1h'\nserve:\n  listen: '" + listen + "'\n"
	f, err := config.Parse("imgvec.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestServeRefusesOpenListenWithoutToken(t *testing.T) {
	t.Setenv("IMGVEC_SERVE_TOKEN", "")
	if _, err := New(testServeConfig(t, "0.0.0.0:9464"), nil, nil); err == nil {
		t.Fatal("serving beyond loopback without a token was accepted")
	}
	t.Setenv("IMGVEC_SERVE_TOKEN", "s3cret")
	if _, err := New(testServeConfig(t, "0.0.0.0:9464"), nil, nil); err != nil {
		t.Fatalf("with a token: %v", err)
	}
}

func TestTriggerNeedsToken(t *testing.T) {
	t.Setenv("IMGVEC_SERVE_TOKEN", "s3cret")
	s, err := New(testServeConfig(t, "127.0.0.1:0"), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	h := s.routes()
	for _, tc := range []struct {
		auth string
		want int
	}{
		{"", http.StatusUnauthorized},
		{"Bearer wrong", http.StatusUnauthorized},
		{"s3cret", http.StatusUnauthorized},
		// Authorised, but the scheduler has not started (models load
		// first): not available yet.
		{"Bearer s3cret", http.StatusServiceUnavailable},
	} {
		req := httptest.NewRequest(http.MethodPost, "/v1/jobs/photos/run", nil)
		if tc.auth != "" {
			req.Header.Set("Authorization", tc.auth)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != tc.want {
			t.Errorf("Authorization %q: HTTP %d, want %d (%s)", tc.auth, rec.Code, tc.want, rec.Body)
		}
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
	if rec.Code != http.StatusServiceUnavailable {
		t.Errorf("readyz before the models loaded: %d", rec.Code)
	}
}

// A replica's default lease identity is stable across restarts when its
// listen port is fixed (host and bound address, which no two live
// processes share), and new per process when the port is 0.
func TestDefaultReplicaID(t *testing.T) {
	host, err := os.Hostname()
	if err != nil || host == "" {
		t.Skip("no host name")
	}
	bound := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9464}
	if got, want := defaultReplicaID("127.0.0.1:9464", bound), host+"/127.0.0.1:9464"; got != want {
		t.Errorf("fixed port: %q, want %q", got, want)
	}
	if a, b := defaultReplicaID("127.0.0.1:0", bound), defaultReplicaID("127.0.0.1:0", bound); a == b {
		t.Errorf("port 0: two processes would share the identity %q", a)
	}
}
