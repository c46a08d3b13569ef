// Command server is the restaurant backend: the HTTP API (serve), database
// migrations (migrate), a health probe for containers without a shell
// (healthcheck) and an online database copy (backup).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/stagecoach/stagecoach/examples/restaurant/backend/internal/api"
	"github.com/stagecoach/stagecoach/examples/restaurant/backend/internal/migrate"
	"github.com/stagecoach/stagecoach/examples/restaurant/backend/internal/store"
	"github.com/stagecoach/stagecoach/examples/restaurant/backend/migrations"
)

const usage = `usage: server <command> [flags]

commands:
  serve        run the HTTP server (-addr, -db, -static, -pidfile, -version)
  migrate      apply pending database migrations (-db; -status to only list them)
  healthcheck  GET a health URL; exit 0 on 200, 1 otherwise (-url, -timeout)
  backup       copy the database consistently while it is in use (-db, -out)
  version      print the version

-db defaults to $DATABASE_PATH, -addr to 127.0.0.1:$PORT when PORT is set
(as in a deploy slot), else 127.0.0.1:8080. Run "server <command> -h" for a command's flags.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run executes one subcommand and returns the process exit code:
// 0 success, 1 failure, 2 usage error.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmd, rest := args[0], args[1:]
	var err error
	switch cmd {
	case "serve":
		err = serve(rest, stderr)
	case "migrate":
		err = migrateCmd(rest, stdout, stderr)
	case "healthcheck":
		err = healthcheck(rest, stderr)
	case "backup":
		err = backup(rest, stdout, stderr)
	case "version":
		fs := newFlags("version", stderr)
		versionFlag := fs.String("version", "", "version to report")
		if err = fs.Parse(rest); err == nil {
			fmt.Fprintln(stdout, resolveVersion(*versionFlag, os.Getenv, executableDir()))
		}
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "server: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		return 2
	default:
		fmt.Fprintf(stderr, "server %s: %v\n", cmd, err)
		return 1
	}
}

// errUsage marks errors already reported by the flag package.
var errUsage = errors.New("usage")

func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("server "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "%s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		return errUsage
	}
	return nil
}

func dbFlag(fs *flag.FlagSet) *string {
	return fs.String("db", os.Getenv("DATABASE_PATH"), "SQLite database file (default $DATABASE_PATH)")
}

func serve(args []string, stderr io.Writer) error {
	fs := newFlags("serve", stderr)
	addr := fs.String("addr", defaultAddr(os.Getenv), "listen address (default 127.0.0.1:$PORT when PORT is set)")
	db := dbFlag(fs)
	static := fs.String("static", "", "directory with the built frontend to serve at / (optional)")
	pidfile := fs.String("pidfile", "", "write the process id here while running (optional)")
	versionFlag := fs.String("version", "", "version reported by /healthz (default $APP_VERSION, else a VERSION file next to the executable, else dev)")
	grace := fs.Duration("shutdown-timeout", 10*time.Second, "how long in-flight requests get to finish on SIGTERM")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *static != "" {
		if err := api.StaticDirOK(*static); err != nil {
			return err
		}
	}
	conn, err := store.Open(*db)
	if err != nil {
		return err
	}
	defer conn.Close()
	ms, err := migrate.Load(migrations.FS)
	if err != nil {
		return err
	}
	logger := log.New(stderr, "", log.LstdFlags|log.LUTC)
	version := resolveVersion(*versionFlag, os.Getenv, executableDir())
	srv := &http.Server{
		Handler: (&api.Server{
			Store:      &store.Store{DB: conn},
			Version:    version,
			WantSchema: migrate.Latest(ms),
			Static:     *static,
			Log:        logger,
		}).Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          logger,
	}

	// Listen before writing the pidfile, so the pidfile means "accepting".
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", *addr, err)
	}
	if *pidfile != "" {
		if err := writePidfile(*pidfile); err != nil {
			ln.Close()
			return err
		}
		defer removePidfile(*pidfile)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	logger.Printf("restaurant %s listening on http://%s (db %s)", version, ln.Addr(), *db)

	select {
	case err := <-served:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	stop() // a second signal kills the process the default way
	logger.Printf("shutting down, waiting up to %s for requests in flight", *grace)
	sctx, cancel := context.WithTimeout(context.Background(), *grace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shut down: %w", err)
	}
	logger.Printf("stopped")
	return nil
}

func migrateCmd(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("migrate", stderr)
	db := dbFlag(fs)
	status := fs.Bool("status", false, "list applied and pending migrations; change nothing")
	if err := parse(fs, args); err != nil {
		return err
	}
	ms, err := migrate.Load(migrations.FS)
	if err != nil {
		return err
	}
	if *status {
		return printStatus(*db, ms, stdout)
	}
	if *db != "" {
		// The first migration creates the database; give it a directory.
		if err := os.MkdirAll(filepath.Dir(*db), 0o755); err != nil {
			return fmt.Errorf("create database directory: %w", err)
		}
	}
	conn, err := store.Open(*db)
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	n := 0
	err = migrate.Apply(ctx, conn, ms, func(m migrate.Migration) {
		n++
		fmt.Fprintf(stdout, "applied %s\n", m.File)
	})
	if err != nil {
		return err
	}
	cur, err := migrate.Current(ctx, conn)
	if err != nil {
		return err
	}
	if n == 0 {
		fmt.Fprintf(stdout, "database is up to date (schema %d)\n", cur)
	} else {
		fmt.Fprintf(stdout, "applied %d migration(s); schema is now %d\n", n, cur)
	}
	return nil
}

// printStatus lists applied and pending migrations without changing the
// database, nor creating it when it does not exist yet.
func printStatus(db string, ms []migrate.Migration, stdout io.Writer) error {
	if db == "" {
		return errors.New("no database given (use -db or DATABASE_PATH)")
	}
	var sts []migrate.Status
	if _, err := os.Stat(db); errors.Is(err, os.ErrNotExist) {
		for _, m := range ms {
			sts = append(sts, migrate.Status{Migration: m})
		}
	} else {
		conn, err := store.Open(db)
		if err != nil {
			return err
		}
		defer conn.Close()
		if sts, err = migrate.Statuses(context.Background(), conn, ms); err != nil {
			return err
		}
	}
	for _, s := range sts {
		switch {
		case s.Changed:
			fmt.Fprintf(stdout, "applied  %s  %s  (file changed since)\n", s.File, s.AppliedAt)
		case s.Applied:
			fmt.Fprintf(stdout, "applied  %s  %s\n", s.File, s.AppliedAt)
		default:
			fmt.Fprintf(stdout, "pending  %s\n", s.File)
		}
	}
	return nil
}

func healthcheck(args []string, stderr io.Writer) error {
	fs := newFlags("healthcheck", stderr)
	def := os.Getenv("HEALTHCHECK_URL")
	if def == "" {
		def = "http://127.0.0.1:8080/healthz"
	}
	url := fs.String("url", def, "URL to GET (default $HEALTHCHECK_URL)")
	timeout := fs.Duration("timeout", 3*time.Second, "request timeout")
	if err := parse(fs, args); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, *url, nil)
	if err != nil {
		return fmt.Errorf("check %s: %w", *url, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("check %s: %w", *url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("check %s: status %d: %s", *url, resp.StatusCode, strings.TrimSpace(string(body)))
	}
	return nil
}

func backup(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("backup", stderr)
	db := dbFlag(fs)
	out := fs.String("out", "", "file to write the copy to (must not exist)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *out == "" {
		fmt.Fprintln(stderr, "server backup: -out is required")
		return errUsage
	}
	if _, err := os.Stat(*db); err != nil {
		return fmt.Errorf("database %s: %w", *db, err)
	}
	conn, err := store.Open(*db)
	if err != nil {
		return err
	}
	defer conn.Close()
	// VACUUM INTO reads one consistent snapshot, so the server may keep writing.
	if _, err := conn.Exec(`VACUUM INTO ?`, *out); err != nil {
		return fmt.Errorf("back up %s to %s: %w", *db, *out, err)
	}
	fmt.Fprintf(stdout, "backed up %s to %s\n", *db, *out)
	return nil
}

// resolveVersion picks the version to report: the flag, else $APP_VERSION,
// else the first line of a VERSION file in exeDir, else "dev".
// defaultAddr is serve's -addr when none is given: the loopback address
// on $PORT, which a deploy slot sets, else on 8080.
func defaultAddr(getenv func(string) string) string {
	if port := strings.TrimSpace(getenv("PORT")); port != "" {
		return net.JoinHostPort("127.0.0.1", port)
	}
	return "127.0.0.1:8080"
}

func resolveVersion(flagValue string, getenv func(string) string, exeDir string) string {
	if v := strings.TrimSpace(flagValue); v != "" {
		return v
	}
	if v := strings.TrimSpace(getenv("APP_VERSION")); v != "" {
		return v
	}
	if exeDir != "" {
		if b, err := os.ReadFile(filepath.Join(exeDir, "VERSION")); err == nil {
			line, _, _ := strings.Cut(string(b), "\n")
			if v := strings.TrimSpace(line); v != "" {
				return v
			}
		}
	}
	return "dev"
}

// executableDir is the directory of the running binary with symlinks
// resolved, so a binary started through a "current" link finds the VERSION
// file of its own release.
func executableDir() string {
	exe, err := os.Executable()
	if err != nil {
		return ""
	}
	if real, err := filepath.EvalSymlinks(exe); err == nil {
		exe = real
	}
	return filepath.Dir(exe)
}

// writePidfile writes the pid through a temporary file and a rename, so a
// reader never sees a partial number.
func writePidfile(path string) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		return fmt.Errorf("write pidfile: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write pidfile: %w", err)
	}
	return nil
}

// removePidfile removes the pidfile only while it still names this process:
// a newer server may have replaced it already.
func removePidfile(path string) {
	b, err := os.ReadFile(path)
	if err == nil && strings.TrimSpace(string(b)) == strconv.Itoa(os.Getpid()) {
		os.Remove(path)
	}
}
