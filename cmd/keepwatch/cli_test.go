package main

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"keepwatch/internal/secret"
	"keepwatch/internal/store"
	"keepwatch/internal/testutil"
)

// runCLI runs a keepwatch command in-process and returns its exit code,
// stdout and stderr.
func runCLI(ctx context.Context, args ...string) (int, string, string) {
	var out, errb syncBuffer
	e := &env{stdin: strings.NewReader(""), stdout: &out, stderr: &errb}
	code := run(ctx, e, args)
	return code, out.String(), errb.String()
}

// runBinary runs the real keepwatch binary (this test binary acting as
// it) and returns its exit code, stdout and stderr.
func runBinary(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "KEEPWATCH_TEST_RUN_MAIN=1")
	var out, errb syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatal(err)
	}
	return cmd.ProcessState.ExitCode(), out.String(), errb.String()
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func TestAdminRefusesMissingDatabase(t *testing.T) {
	ctx := context.Background()
	base := t.TempDir()
	typo := filepath.Join(base, "keepwach-data") // never created
	empty := filepath.Join(base, "empty")
	if err := os.Mkdir(empty, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{typo, empty} {
		for _, args := range [][]string{
			{"admin", "--data", dir, "token", "create", "--integrator", "Acme", "--name", "n", "--role", "owner"},
			{"admin", "--data", dir, "integrator", "add", "Acme", "--owner-email", "ops@acme.example"},
			{"admin", "--data", dir, "license", "add", "--slc", "AB-1234", "--customer", "c", "--product", "p", "--cameras", "1", "--care-plus-until", "2099-01-01"},
			{"admin", "--data", dir, "backup", "--to", filepath.Join(base, "copy.db")},
			{"simulate", "--server", "https://127.0.0.1:1", "--installations", "1", "--servers", "1", "--data", dir, "--state", filepath.Join(base, "sim")},
		} {
			code, out, errOut := runCLI(ctx, args...)
			want := "no keepwatch database in " + dir
			if code != 1 || out != "" || !strings.Contains(errOut, want) || !strings.Contains(errOut, "keepwatch serve --data "+dir) {
				t.Errorf("%v: exit %d, stdout %q, stderr:\n%s", args, code, out, errOut)
			}
			if args[0] == "admin" && !strings.Contains(errOut, "--create") {
				t.Errorf("%v does not offer --create:\n%s", args, errOut)
			}
			if exists(filepath.Join(dir, store.DBFile)) {
				t.Fatalf("%v created a database in %s", args, dir)
			}
		}
	}
	if exists(typo) {
		t.Fatalf("a mistyped --data was created")
	}

	// Without --data, admin looks in ./keepwatch-data and says where that is.
	t.Chdir(base)
	code, _, errOut := runCLI(ctx, "admin", "token", "create", "--integrator", "Acme", "--name", "n", "--role", "owner")
	if code != 1 || !strings.Contains(errOut, "no keepwatch database in keepwatch-data ("+filepath.Join(base, "keepwatch-data")+")") {
		t.Fatalf("default data dir: exit %d:\n%s", code, errOut)
	}

	// --create makes one, before or after the command's name; then the
	// database exists and no --create is needed.
	code, out, errOut := runCLI(ctx, "admin", "integrator", "add", "Acme", "--owner-email", "ops@acme.example", "--data", typo, "--create")
	if code != 0 || !strings.Contains(errOut, "created a new keepwatch database in "+typo) || len(strings.TrimSpace(out)) < 16 {
		t.Fatalf("--create: exit %d, stdout %q:\n%s", code, out, errOut)
	}
	code, out, errOut = runCLI(ctx, "admin", "--data", typo, "token", "create", "--integrator", "Acme", "--name", "n", "--role", "owner")
	if code != 0 || !strings.HasPrefix(out, "kw_") || strings.Contains(errOut, "new keepwatch database") {
		t.Fatalf("after --create: exit %d, stdout %q:\n%s", code, out, errOut)
	}

	// The README's order: serve creates the database, admin then works on
	// it without --create.
	data := filepath.Join(base, "served")
	sctx, stop := context.WithCancel(ctx)
	done := make(chan int, 1)
	var serveErr syncBuffer
	go func() {
		done <- run(sctx, &env{stdin: strings.NewReader(""), stdout: &serveErr, stderr: &serveErr},
			[]string{"serve", "--data", data, "--insecure-http", "--addr", "127.0.0.1:0"})
	}()
	eventually(t, 20*time.Second, "serve listens", func() bool { return strings.Contains(serveErr.String(), "keepwatch listening") })
	if code, _, errOut := runCLI(ctx, "admin", "--data", data, "integrator", "add", "Acme", "--owner-email", "ops@acme.example"); code != 0 {
		t.Fatalf("admin on the data of a running serve: exit %d:\n%s", code, errOut)
	}
	stop()
	if code := <-done; code != 0 {
		t.Fatalf("serve: exit %d:\n%s", code, serveErr.String())
	}

	// PostgreSQL: the database always exists; a wrong --db is refused
	// before anything is tried.
	code, _, errOut = runCLI(ctx, "admin", "--db", filepath.Join(base, "dir"), "token", "create", "--integrator", "A", "--name", "n", "--role", "owner")
	if code != 2 || !strings.Contains(errOut, "postgres:// URL") || exists(filepath.Join(base, "dir")) {
		t.Fatalf("--db with a directory: exit %d:\n%s", code, errOut)
	}
	code, _, errOut = runCLI(ctx, "admin", "--data", typo, "--db", "postgres://localhost/x", "token", "create", "--integrator", "A", "--name", "n", "--role", "owner")
	if code != 2 || !strings.Contains(errOut, "--data or --db, not both") {
		t.Fatalf("--data and --db: exit %d:\n%s", code, errOut)
	}
}

func TestAdminPostgresNeedsNoCreate(t *testing.T) {
	dsn := testutil.DSN(t, store.Postgres)
	code, _, errOut := runCLI(context.Background(), "admin", "--db", dsn, "integrator", "add", "Acme", "--owner-email", "ops@acme.example")
	if code != 0 {
		t.Fatalf("admin --db: exit %d:\n%s", code, errOut)
	}
}

// helpCases are command lines that ask for help, with the usage line the
// help must start with.
var helpCases = []struct {
	args  []string
	usage string
}{
	{[]string{"--help"}, "Usage: keepwatch <command>"},
	{[]string{"-h"}, "Usage: keepwatch <command>"},
	{[]string{"help"}, "Usage: keepwatch <command>"},
	{[]string{"help", "serve"}, "Usage: keepwatch serve "},
	{[]string{"serve", "--help"}, "Usage: keepwatch serve "},
	{[]string{"serve", "-h"}, "Usage: keepwatch serve "},
	{[]string{"demo", "--help"}, "Usage: keepwatch demo "},
	{[]string{"admin", "--help"}, "Usage: keepwatch admin "},
	{[]string{"admin", "help"}, "Usage: keepwatch admin "},
	{[]string{"admin", "--data", "nowhere", "--help"}, "Usage: keepwatch admin "},
	{[]string{"admin", "license", "--help"}, "Usage: keepwatch admin license <command>"},
	{[]string{"agent", "--help"}, "Usage: keepwatch agent <command>"},
	{[]string{"agent", "help"}, "Usage: keepwatch agent <command>"},
	{[]string{"simulate", "--help"}, "Usage: keepwatch simulate "},
	{[]string{"bench", "--help"}, "Usage: keepwatch bench "},
	{[]string{"version", "--help"}, "Usage: keepwatch version"},
}

func TestHelpGoesToStdout(t *testing.T) {
	ctx := context.Background()
	for _, c := range helpCases {
		code, out, errOut := runCLI(ctx, c.args...)
		if code != 0 || !strings.HasPrefix(out, c.usage) || errOut != "" {
			t.Errorf("%v: exit %d, stderr %q, stdout:\n%s", c.args, code, errOut, out)
		}
	}
	// Mistakes: stderr, exit 2, nothing on stdout, and a pointer to the help.
	for _, c := range []struct {
		args []string
		want []string
	}{
		{nil, []string{"Usage: keepwatch <command>"}},
		{[]string{"frobnicate"}, []string{`unknown command "frobnicate"`, "  serve ", "  agent "}},
		{[]string{"serve", "--bogus"}, []string{"keepwatch serve: unknown flag --bogus", "Run 'keepwatch serve --help' for usage."}},
		{[]string{"serve", "--addr"}, []string{"a value is needed after --addr"}},
		{[]string{"agent"}, []string{"keepwatch agent: missing command", "  send ", "  install-service "}},
		{[]string{"agent", "frob"}, []string{`unknown command "frob"`, "  enroll ", "Run 'keepwatch agent --help'"}},
		{[]string{"agent", "send"}, []string{"keepwatch agent send: --state is required", "Run 'keepwatch agent send --help'"}},
		{[]string{"agent", "consent", "--state", "x", "maybe"}, []string{"want on or off", "Run 'keepwatch agent consent --help'"}},
		{[]string{"admin"}, []string{"keepwatch admin: missing command", "  token create "}},
		{[]string{"admin", "frob"}, []string{`unknown command "frob"`, "  license add "}},
		{[]string{"admin", "token"}, []string{`"token" needs a command`, "  token create "}},
		{[]string{"admin", "token", "create", "--name", "n"}, []string{"--integrator, --role are required", "Run 'keepwatch admin token create --help'"}},
		{[]string{"admin", "license", "add", "--slc", "AB-1", "--customer", "c", "--product", "p", "--cameras", "many", "--care-plus-until", "2099-01-01"},
			[]string{`--cameras "many": want a whole number`}},
		{[]string{"version", "extra"}, []string{`unexpected argument "extra"`}},
	} {
		code, out, errOut := runCLI(ctx, c.args...)
		ok := code == 2 && out == ""
		for _, w := range c.want {
			ok = ok && strings.Contains(errOut, w)
		}
		if !ok {
			t.Errorf("%v: exit %d, stdout %q, stderr:\n%s", c.args, code, out, errOut)
		}
	}
	// The same through the real binary.
	code, out, errOut := runBinary(t, "serve", "--help")
	if code != 0 || !strings.HasPrefix(out, "Usage: keepwatch serve") || errOut != "" {
		t.Fatalf("binary serve --help: exit %d, stderr %q", code, errOut)
	}
	code, out, errOut = runBinary(t, "serve", "--bogus")
	if code != 2 || out != "" || !strings.Contains(errOut, "unknown flag --bogus") {
		t.Fatalf("binary serve --bogus: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

// flagsIn returns the --flags a text names.
func flagsIn(text string) map[string]bool {
	out := map[string]bool{}
	for _, m := range regexp.MustCompile(`--([a-z][a-z0-9-]*)`).FindAllStringSubmatch(text, -1) {
		out[m[1]] = true
	}
	return out
}

// listedFlags returns the flags a help lists in its flag sections.
func listedFlags(help string) map[string]bool {
	out := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^  --([a-z][a-z0-9-]*)`).FindAllStringSubmatch(help, -1) {
		out[m[1]] = true
	}
	return out
}

func TestSubcommandHelp(t *testing.T) {
	ctx := context.Background()
	type sub struct {
		path     string // "agent send"
		synopsis string
	}
	var subs []sub
	for _, c := range agentCommands {
		subs = append(subs, sub{"agent " + c.name, c.synopsis})
	}
	for _, c := range adminCommands {
		subs = append(subs, sub{"admin " + c.name, c.synopsis})
	}
	subs = append(subs, sub{"serve", serveSynopsis}, sub{"demo", ""}, sub{"simulate", simulateSynopsis}, sub{"bench", ""}, sub{"version", ""})
	for _, s := range subs {
		args := append(strings.Fields(s.path), "--help")
		code, out, errOut := runCLI(ctx, args...)
		if code != 0 || errOut != "" || !strings.HasPrefix(out, "Usage: keepwatch ") || !strings.Contains(strings.SplitN(out, "\n", 2)[0], s.path) {
			t.Errorf("%s --help: exit %d, stderr %q:\n%s", s.path, code, errOut, out)
			continue
		}
		// Every flag of its synopsis is listed with what it does.
		listed := listedFlags(out)
		for f := range flagsIn(s.synopsis) {
			if !listed[f] {
				t.Errorf("%s --help: the synopsis names --%s but the help does not list it:\n%s", s.path, f, out)
			}
		}
		// It is this command's help, not its family's.
		for _, other := range subs {
			if other.path != s.path && strings.HasPrefix(other.path, strings.Fields(s.path)[0]+" ") && other.synopsis != "" &&
				strings.Contains(out, other.path+" "+other.synopsis) {
				t.Errorf("%s --help shows %s too:\n%s", s.path, other.path, out)
			}
		}
		// keepwatch help <command> says the same.
		code, again, _ := runCLI(ctx, append([]string{"help"}, strings.Fields(s.path)...)...)
		if code != 0 || again != out {
			t.Errorf("keepwatch help %s differs from %s --help", s.path, s.path)
		}
	}
	// Admin commands list the database flags apart from their own.
	_, out, _ := runCLI(ctx, "admin", "token", "create", "--help")
	_, flags, _ := strings.Cut(out, "\nFlags:")
	own, db, _ := strings.Cut(flags, "\nDatabase:")
	if !strings.Contains(own, "--integrator") || strings.Contains(own, "--data") || !strings.Contains(db, "--data") || !strings.Contains(db, "--create") {
		t.Fatalf("admin token create --help:\n%s", out)
	}
}

func TestLicenceAlias(t *testing.T) {
	ctx := context.Background()
	data := t.TempDir()
	if code, _, errOut := runCLI(ctx, "admin", "--data", data, "--create", "integrator", "add", "Acme", "--owner-email", "ops@acme.example"); code != 0 {
		t.Fatal(errOut)
	}
	code, key, errOut := runCLI(ctx, "admin", "--data", data, "licence", "add", "--slc", "AB-1234", "--customer", "Harbor Logistics",
		"--product", "Husky M30", "--cameras", "8", "--care-plus-until", "2099-01-01")
	if code != 0 || !strings.HasPrefix(key, "kwe_") || !strings.HasPrefix(errOut, "licence AB-1234 added") {
		t.Fatalf("licence add: exit %d, stdout %q:\n%s", code, key, errOut)
	}
	code, _, errOut = runCLI(ctx, "admin", "--data", data, "licence", "care-plus", "--slc", "AB-1234", "--until", "2099-06-30")
	if code != 0 || !strings.Contains(errOut, "2099-06-30") {
		t.Fatalf("licence care-plus: exit %d:\n%s", code, errOut)
	}
	code, newKey, errOut := runCLI(ctx, "admin", "--data", data, "licence", "rotate-key", "--slc", "AB-1234")
	if code != 0 || !strings.HasPrefix(newKey, "kwe_") || newKey == key {
		t.Fatalf("licence rotate-key: exit %d:\n%s", code, errOut)
	}
	// The same command under both spellings, help included.
	_, a, _ := runCLI(ctx, "admin", "licence", "add", "--help")
	_, b, _ := runCLI(ctx, "help", "admin", "license", "add")
	if a == "" || a != b {
		t.Fatalf("licence add --help and help admin license add differ:\n%s\n%s", a, b)
	}
	st, err := store.Open(ctx, data)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	in, keyHash, err := st.EnrollmentInfo(ctx, "AB-1234")
	if err != nil || in.Customer != "Harbor Logistics" || in.CarePlusUntil.String() != "2099-06-30" ||
		!bytes.Equal(keyHash, secret.Hash(strings.TrimSpace(newKey))) {
		t.Fatalf("the licence changed under the alias: %+v, %v", in, err)
	}
	// Revoking prints no key and leaves none that enrolls.
	code, out, errOut := runCLI(ctx, "admin", "--data", data, "license", "revoke-key", "--slc", "ab-1234")
	if code != 0 || out != "" || !strings.Contains(errOut, "revoked") {
		t.Fatalf("license revoke-key: exit %d, stdout %q:\n%s", code, out, errOut)
	}
	if _, keyHash, err = st.EnrollmentInfo(ctx, "AB-1234"); err != nil || len(keyHash) != 0 {
		t.Fatalf("after revoke-key: hash %x, %v", keyHash, err)
	}

	// One spelling per context: the command is "license", the noun in
	// prose "licence" (the verb stays "license", "licensed" as in British
	// English). Every "license" in the help and messages is the command,
	// the condition kind or the "Software License Code".
	_, admin, _ := runCLI(ctx, "admin", "--help")
	_, sub, _ := runCLI(ctx, "admin", "license", "add", "--help")
	allowed := regexp.MustCompile(`license (add|care-plus|rotate-key|revoke-key|<command>)|license_exceeded|"license"|Software License Code`)
	for _, text := range []string{admin, sub, errOut} {
		if rest := allowed.ReplaceAllString(text, ""); regexp.MustCompile(`(?i)\blicense\b`).MatchString(rest) {
			t.Errorf("\"license\" in prose:\n%s", text)
		}
	}
}

func TestAdminDateErrorsSayWhatIsWrong(t *testing.T) {
	ctx := context.Background()
	for date, want := range map[string]string{
		"2027-02-30": "2027-02-30: February 2027 has 28 days",
		"2027-13-01": "2027-13-01: month 13 is not a month",
		"31/12/2027": `date "31/12/2027": expected YYYY-MM-DD, e.g. 2027-12-31`,
	} {
		code, _, errOut := runCLI(ctx, "admin", "--data", t.TempDir(), "license", "add", "--slc", "AB-1234", "--customer", "c",
			"--product", "p", "--cameras", "1", "--care-plus-until", date)
		if code != 2 || !strings.Contains(errOut, "keepwatch admin license add: "+want) {
			t.Errorf("--care-plus-until %s: exit %d:\n%s", date, code, errOut)
		}
		code, _, errOut = runCLI(ctx, "admin", "license", "care-plus", "--slc", "AB-1234", "--until", date)
		if code != 2 || !strings.Contains(errOut, want) {
			t.Errorf("--until %s: exit %d:\n%s", date, code, errOut)
		}
	}
}

// busyAddr returns an address something already listens on.
func busyAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln.Addr().String()
}

// closedPort returns a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestServeLeavesNoDataDirOnFailure(t *testing.T) {
	ctx := context.Background()
	base := t.TempDir()
	data := filepath.Join(base, "new", "data")
	busy := busyAddr(t)
	for _, c := range []struct {
		name string
		args []string
		code int
	}{
		{"no TLS choice", []string{"--addr", "127.0.0.1:0"}, 2},
		{"two TLS choices", []string{"--addr", "127.0.0.1:0", "--self-signed", "--insecure-http"}, 2},
		{"bad flag", []string{"--addr", "127.0.0.1:0", "--insecure-http", "--heartbeat-interval", "1ms"}, 2},
		{"address in use", []string{"--addr", busy, "--self-signed"}, 1},
		{"TLS files missing", []string{"--addr", "127.0.0.1:0", "--tls-cert", filepath.Join(base, "cert.pem"), "--tls-key", filepath.Join(base, "key.pem")}, 1},
		{"PostgreSQL unreachable", []string{"--addr", "127.0.0.1:0", "--self-signed", "--db", "postgres://postgres@" + closedPort(t) + "/test?sslmode=disable&connect_timeout=5"}, 1},
	} {
		code, _, errOut := runCLI(ctx, append([]string{"serve", "--data", data}, c.args...)...)
		if code != c.code {
			t.Errorf("%s: exit %d, want %d:\n%s", c.name, code, c.code, errOut)
		}
		if exists(filepath.Join(base, "new")) {
			t.Fatalf("%s: a failed serve left %s behind:\n%s", c.name, filepath.Join(base, "new"), errOut)
		}
	}
	// A data directory that existed before is left as it was.
	if code, _, errOut := runCLI(ctx, "admin", "--data", data, "--create", "integrator", "add", "Acme", "--owner-email", "ops@acme.example"); code != 0 {
		t.Fatal(errOut)
	}
	if code, _, errOut := runCLI(ctx, "serve", "--data", data, "--addr", busy, "--self-signed"); code != 1 {
		t.Fatalf("address in use: exit %d:\n%s", code, errOut)
	}
	if !exists(filepath.Join(data, store.DBFile)) {
		t.Fatal("a failed serve removed an existing database")
	}
}

func TestServeAddressInUseHint(t *testing.T) {
	busy := busyAddr(t)
	code, _, errOut := runBinary(t, "serve", "--data", filepath.Join(t.TempDir(), "d"), "--addr", busy, "--insecure-http")
	want := "hint: another keepwatch or program listens on " + busy + "; stop it or choose another --addr"
	if code != 1 || !strings.Contains(errOut, "address already in use") || !strings.Contains(errOut, want) {
		t.Fatalf("exit %d:\n%s", code, errOut)
	}
	// The demo, whose default address is often taken, says the same.
	code, _, errOut = runCLI(context.Background(), "demo", "--addr", busy, "--data", t.TempDir())
	if code != 1 || !strings.Contains(errOut, "hint: another keepwatch or program listens on "+busy) {
		t.Fatalf("demo: exit %d:\n%s", code, errOut)
	}
}

func TestServeFailureHints(t *testing.T) {
	ctx := context.Background()
	base := t.TempDir()
	cert, key := filepath.Join(base, "cert.pem"), filepath.Join(base, "key.pem")
	code, _, errOut := runCLI(ctx, "serve", "--data", filepath.Join(base, "d"), "--addr", "127.0.0.1:0", "--tls-cert", cert, "--tls-key", key)
	if code != 1 || !strings.Contains(errOut, "hint: --tls-cert "+cert+" does not exist") {
		t.Errorf("missing certificate: exit %d:\n%s", code, errOut)
	}
	os.WriteFile(cert, []byte("not a certificate"), 0o600)
	os.WriteFile(key, []byte("not a key"), 0o600)
	code, _, errOut = runCLI(ctx, "serve", "--data", filepath.Join(base, "d"), "--addr", "127.0.0.1:0", "--tls-cert", cert, "--tls-key", key)
	if code != 1 || !strings.Contains(errOut, "must be PEM files") {
		t.Errorf("certificate not PEM: exit %d:\n%s", code, errOut)
	}
	pg := closedPort(t)
	// PostgreSQL needs the nodes' shared secret key.
	keyFile := filepath.Join(base, "secret.key")
	os.WriteFile(keyFile, []byte(testutil.SecretKey), 0o600)
	code, _, errOut = runCLI(ctx, "serve", "--db", "postgres://postgres@"+pg+"/test?sslmode=disable", "--secret-key-file", keyFile, "--addr", "127.0.0.1:0", "--insecure-http")
	if code != 1 || !strings.Contains(errOut, "hint: nothing answers at "+pg+": is PostgreSQL running") {
		t.Errorf("PostgreSQL unreachable: exit %d:\n%s", code, errOut)
	}
	// Tests run as root here, where any port may be bound: the error of
	// an unprivileged listen on a low port is built as net.Listen returns it.
	denied := &net.OpError{Op: "listen", Net: "tcp", Addr: &net.TCPAddr{Port: 443}, Err: os.NewSyscallError("bind", syscall.EACCES)}
	if h := hintFor(denied, hintContext{addr: ":443"}); !strings.Contains(h, "ports below 1024") || !strings.Contains(h, "CAP_NET_BIND_SERVICE") {
		t.Errorf("permission denied on a low port: %q", h)
	}
	if dsn := os.Getenv("KEEPWATCH_TEST_POSTGRES"); dsn != "" || testutil.RequireAll() {
		if dsn == "" {
			dsn = testutil.DefaultPostgres
		}
		missing := regexp.MustCompile(`/[^/?]+(\?|$)`).ReplaceAllString(dsn, "/keepwatch_no_such_db$1")
		code, _, errOut = runCLI(ctx, "serve", "--db", missing, "--secret-key-file", keyFile, "--addr", "127.0.0.1:0", "--insecure-http")
		if code != 1 || !strings.Contains(errOut, "database keepwatch_no_such_db does not exist") {
			t.Errorf("missing database: exit %d:\n%s", code, errOut)
		}
	}
}
