package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"

	"keepwatch"
	"keepwatch/internal/notify"
	"keepwatch/internal/secret"
	"keepwatch/internal/store"
)

// adminCommand is one `keepwatch admin` command.
type adminCommand struct {
	name     string // "license add"
	synopsis string // its flags, after the name
	about    string
	run      adminFunc
}

type adminFunc func(ctx context.Context, e *env, fs *flag.FlagSet, args []string, open func() (*store.Store, error)) error

// adminCommands in the order an operator uses them.
var adminCommands = []adminCommand{
	{"integrator add", "NAME --owner-email E", `Creates an integrator (a tenant: a company that services surveillance
systems) and its first owner, who signs in with this e-mail. The password
is read from stdin (one line, at least 10 characters); when stdin is empty
or a terminal, one is generated and printed once on stdout. The owner is
notified of incidents by e-mail until the channels and rules are changed.`, adminIntegratorAdd},
	{"user add", "--integrator NAME --email E --role owner|technician|viewer", `Adds a user to an integrator; the password is read or generated as for
integrator add. Viewers read; technicians also acknowledge, assign and
resolve incidents and set maintenance; owners also manage users, tokens,
rules and registrations.`, adminUserAdd},
	{"token create", "--integrator NAME --name N --role owner|technician|viewer", `Creates an API token for the integrator and prints it on stdout, once.
Clients send it as "Authorization: Bearer TOKEN".`, adminTokenCreate},
	{"license add", "--slc SLC --customer NAME --product P --cameras N --care-plus-until YYYY-MM-DD", `Adds an installation's licence and prints its enrollment key on stdout,
once: the key its recording servers enroll with (keepwatch agent enroll
--key). The integrator then registers the SLC (dashboard: Registration; API:
POST /api/v1/registrations) to see the installation.`, adminLicenseAdd},
	{"license care-plus", "--slc SLC --until YYYY-MM-DD", `Sets the last day of an installation's Care Plus subscription. After it,
keepwatch refuses the installation's reports (care_plus_inactive) and shows
it as "monitoring paused". A running server sees the change within two
seconds.`, adminLicenseCarePlus},
	{"license rotate-key", "--slc SLC", `Replaces an installation's enrollment key and prints the new one on
stdout (and nothing else there). The old key no longer enrolls; servers
already enrolled keep reporting. A key enrolls for serve's
--enrollment-key-days (30 by default) after it was issued; an expired key
is refused with enrollment_key_expired.`, adminLicenseRotateKey},
	{"license revoke-key", "--slc SLC", `Revokes an installation's enrollment key without issuing a new one: nothing
enrolls until rotate-key issues one. Servers already enrolled keep
reporting.`, adminLicenseRevokeKey},
	{"server revoke", "--id SERVER_ID", `Revokes an enrolled recording server: its reports are refused from now on.
The id is the one keepwatch agent status and the dashboard show.`, adminServerRevoke},
	{"server require-rotation", "--id SERVER_ID", `Makes keepwatch ask the server's agent to rotate its report key: every
answer says so (rotate_key) until the agent has switched to a new key,
which a running agent does by itself.`, adminServerRequireRotation},
	{"backup", "--to FILE", `Writes a consistent copy of the SQLite database while keepwatch runs.
Restore it by stopping keepwatch and putting the copy in place as
keepwatch.db in the data directory (removing stale -wal and -shm files).
For PostgreSQL use pg_dump.`, adminBackup},
	{"rotate-secrets", "", `Seals every report key and webhook secret under the current secret key
(the first of --secret-key-file or KEEPWATCH_SECRET_KEY): values stored in
the clear by an older keepwatch, and values sealed under a key being
retired. Afterwards only the current key is needed (docs/operations.md).`, adminRotateSecrets},
}

// adminGroups are the first words of two-word admin commands.
var adminGroups = []string{"integrator", "user", "token", "license", "server"}

const adminAbout = `Sets up what keepwatch serves: integrators and their users and API tokens,
and the licences of installations. Works on the database of a running
keepwatch (changes reach it within two seconds). Commands that produce a
value (token, enrollment key, generated password) print only that value on
stdout; messages go to stderr.`

// adminList prints the admin commands whose names start with prefix.
func adminList(w io.Writer, prefix string) {
	fmt.Fprintln(w, "\nCommands:")
	for _, c := range adminCommands {
		if strings.HasPrefix(c.name, prefix) {
			fmt.Fprintf(w, "  %s %s\n", c.name, c.synopsis)
		}
	}
	if prefix == "" || prefix == "license" {
		fmt.Fprintln(w, `("licence" is accepted for "license".)`)
	}
}

func adminHelp(w io.Writer) {
	helpHeader(w, "admin [--data DIR | --db URL] [--create] <command> [flags]", adminAbout)
	adminList(w, "")
	fs := flag.NewFlagSet("admin", flag.ContinueOnError)
	(&dbFlags{allowCreate: true}).add(fs)
	printFlags(w, "Database (before or after the command)", fs, nil)
	fmt.Fprintln(w, "\nRun 'keepwatch admin <command> --help' for a command's details.")
}

func runAdmin(ctx context.Context, e *env, args []string) error {
	db := &dbFlags{allowCreate: true}
	fs := newFlags(e, "admin", "", "")
	fs.Usage = func() { adminHelp(e.stdout) }
	db.add(fs)
	if err := parseLeading(fs, args); err != nil {
		return err
	}
	rest := fs.Args()
	if len(rest) > 0 && rest[0] == "licence" {
		rest = append([]string{"license"}, rest[1:]...)
	}
	switch {
	case len(rest) == 0:
		var b strings.Builder
		adminList(&b, "")
		return usageError{cmd: "admin", msg: "missing command", more: b.String()}
	case isHelp(rest[0]):
		if rest[0] == "help" && len(rest) > 1 {
			return runAdmin(ctx, e, append(append([]string{}, rest[1:]...), "--help"))
		}
		adminHelp(e.stdout)
		return nil
	}
	cmd, n := findAdminCommand(rest)
	if cmd == nil {
		return adminUnknown(e, rest)
	}
	name := "admin " + cmd.name
	sub := newFlags(e, name, "", "")
	sub.Usage = func() {
		helpHeader(e.stdout, "admin "+cmd.name+" "+cmd.synopsis+" [--data DIR | --db URL]", cmd.about)
		printFlags(e.stdout, "Flags", sub, func(n string) bool { return !isDBFlag(n) })
		printFlags(e.stdout, "Database", sub, isDBFlag)
	}
	db.add(sub)
	open := func() (*store.Store, error) { return db.open(ctx, e.stderr) }
	return inCommand(name, cmd.run(ctx, e, sub, rest[n:], open))
}

// findAdminCommand returns the command args start with and how many words
// its name has.
func findAdminCommand(args []string) (*adminCommand, int) {
	for i := range adminCommands {
		c := &adminCommands[i]
		words := strings.Fields(c.name)
		if len(args) >= len(words) && strings.Join(args[:len(words)], " ") == c.name {
			return c, len(words)
		}
	}
	return nil, 0
}

// adminUnknown answers a command admin does not have: the list of those of
// its group when the first word names one ("license frob", or "license
// --help"), else the list of all.
func adminUnknown(e *env, args []string) error {
	group := ""
	for _, g := range adminGroups {
		if args[0] == g {
			group = g
		}
	}
	var b strings.Builder
	adminList(&b, group)
	switch {
	case group == "":
		return usageError{cmd: "admin", msg: fmt.Sprintf("unknown command %q", args[0]), more: b.String()}
	case len(args) == 1:
		return usageError{cmd: "admin", msg: fmt.Sprintf("%q needs a command", group), more: b.String()}
	case isHelp(args[1]):
		helpHeader(e.stdout, "admin "+group+" <command> [flags] [--data DIR | --db URL]", "")
		fmt.Fprint(e.stdout, b.String())
		return nil
	}
	return usageError{cmd: "admin", msg: fmt.Sprintf("unknown command %q", group+" "+args[1]), more: b.String()}
}

func adminBackup(ctx context.Context, e *env, fs *flag.FlagSet, args []string, open func() (*store.Store, error)) error {
	to := fs.String("to", "", "write the copy to `FILE` (must not exist)")
	if err := flagsOnly(fs, args, "to"); err != nil {
		return err
	}
	s, err := open()
	if err != nil {
		return err
	}
	defer s.Close()
	if err := s.Backup(ctx, *to); err != nil {
		return err
	}
	fmt.Fprintf(e.stderr, "consistent copy written to %s; restore it by stopping keepwatch and putting it in place as %s\n", *to, store.DBFile)
	return nil
}

// password reads a password from piped stdin, or generates one (when
// stdin is empty or a terminal). It is read before anything is created, so
// that a password too short leaves nothing half done.
func password(e *env) (pw string, generated bool, err error) {
	if e.stdinIsPipe {
		line, _ := bufio.NewReader(e.stdin).ReadString('\n')
		line = strings.TrimRight(line, "\r\n")
		if line != "" {
			if len(line) < 10 {
				return "", false, usagef("the password read from stdin must be at least 10 characters")
			}
			return line, false, nil
		}
	}
	return secret.New("")[:24], true, nil
}

// showGenerated prints a generated password once on stdout, after the
// user it belongs to was created.
func showGenerated(e *env, pw string, generated bool) {
	if generated {
		fmt.Fprintln(e.stdout, pw)
		fmt.Fprintln(e.stderr, "generated password printed above; it is shown only once")
	}
}

func adminIntegratorAdd(ctx context.Context, e *env, fs *flag.FlagSet, args []string, open func() (*store.Store, error)) error {
	email := fs.String("owner-email", "", "the first owner's `E-MAIL`, their login")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	switch {
	case len(pos) == 0 || strings.TrimSpace(pos[0]) == "":
		return usagef("the integrator's NAME is missing")
	case len(pos) > 1:
		return usagef("one NAME only; quote a name with spaces: \"%s\"", strings.Join(pos, " "))
	}
	if err := required(fs, "owner-email"); err != nil {
		return err
	}
	if !validEmail(*email) {
		return usagef("--owner-email %q is not an e-mail address", *email)
	}
	pw, generated, err := password(e)
	if err != nil {
		return err
	}
	s, err := open()
	if err != nil {
		return err
	}
	defer s.Close()
	in, err := s.CreateIntegrator(ctx, strings.TrimSpace(pos[0]))
	if err != nil {
		return err
	}
	if _, err := s.CreateUser(ctx, in.ID, strings.ToLower(*email), secret.HashPassword(pw), keepwatch.RoleOwner); err != nil {
		return err
	}
	showGenerated(e, pw, generated)
	if err := notify.DefaultRouting(ctx, s, in.ID, strings.ToLower(*email)); err != nil {
		return err
	}
	fmt.Fprintf(e.stderr, "integrator %q added with owner %s (notified by e-mail; change it with the channels and rules API)\n", in.Name, *email)
	return nil
}

func validEmail(s string) bool {
	at := strings.LastIndexByte(s, '@')
	return at > 0 && at < len(s)-1 && !strings.ContainsAny(s, " \t\r\n<>") && len(s) <= 254
}

func integratorFlag(fs *flag.FlagSet) *string {
	return fs.String("integrator", "", "the integrator's `NAME`, as given to integrator add")
}

func roleFlag(fs *flag.FlagSet) *string {
	return fs.String("role", "", "`ROLE`: owner, technician or viewer")
}

func adminUserAdd(ctx context.Context, e *env, fs *flag.FlagSet, args []string, open func() (*store.Store, error)) error {
	integ, role := integratorFlag(fs), roleFlag(fs)
	email := fs.String("email", "", "the user's `E-MAIL`, their login")
	if err := flagsOnly(fs, args, "integrator", "email", "role"); err != nil {
		return err
	}
	r, err := keepwatch.ParseRole(*role)
	if err != nil {
		return usagef("%s", keepwatch.ErrorMessage(err))
	}
	if !validEmail(*email) {
		return usagef("--email %q is not an e-mail address", *email)
	}
	pw, generated, err := password(e)
	if err != nil {
		return err
	}
	s, err := open()
	if err != nil {
		return err
	}
	defer s.Close()
	in, err := s.IntegratorByName(ctx, *integ)
	if err != nil {
		return err
	}
	if _, err := s.CreateUser(ctx, in.ID, strings.ToLower(*email), secret.HashPassword(pw), r); err != nil {
		return err
	}
	showGenerated(e, pw, generated)
	fmt.Fprintf(e.stderr, "user %s added to %q as %s\n", *email, in.Name, r)
	return nil
}

func adminTokenCreate(ctx context.Context, e *env, fs *flag.FlagSet, args []string, open func() (*store.Store, error)) error {
	integ, role := integratorFlag(fs), roleFlag(fs)
	name := fs.String("name", "", "`N`: what the token is for, e.g. dashboard or psa-sync")
	if err := flagsOnly(fs, args, "integrator", "name", "role"); err != nil {
		return err
	}
	r, err := keepwatch.ParseRole(*role)
	if err != nil {
		return usagef("%s", keepwatch.ErrorMessage(err))
	}
	s, err := open()
	if err != nil {
		return err
	}
	defer s.Close()
	in, err := s.IntegratorByName(ctx, *integ)
	if err != nil {
		return err
	}
	tok := secret.New("kw_")
	if _, err := s.CreateToken(ctx, in.ID, *name, r, secret.Hash(tok)); err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, tok)
	fmt.Fprintf(e.stderr, "token %q (%s) created for %q; it is shown only once\n", *name, r, in.Name)
	return nil
}

func slcFlag(fs *flag.FlagSet) *string {
	return fs.String("slc", "", "the installation's Software License Code, `SLC`")
}

func adminLicenseAdd(ctx context.Context, e *env, fs *flag.FlagSet, args []string, open func() (*store.Store, error)) error {
	slc := slcFlag(fs)
	customer := fs.String("customer", "", "the customer's `NAME`")
	product := fs.String("product", "", "the product `P`, e.g. \"XProtect Corporate 2016\"")
	cameras := fs.String("cameras", "", "the `N` cameras licensed (0 or more)")
	until := fs.String("care-plus-until", "", "last day of Care Plus, `YYYY-MM-DD`")
	if err := flagsOnly(fs, args, "slc", "customer", "product", "cameras", "care-plus-until"); err != nil {
		return err
	}
	n, err := strconv.Atoi(*cameras)
	if err != nil || n < 0 {
		return usagef("--cameras %q: want a whole number, 0 or more", *cameras)
	}
	in := keepwatch.Installation{Customer: strings.TrimSpace(*customer), Product: strings.TrimSpace(*product), Cameras: n}
	if in.SLC, err = keepwatch.NormalizeSLC(*slc); err != nil {
		return usagef("%s", keepwatch.ErrorMessage(err))
	}
	if in.CarePlusUntil, err = keepwatch.ParseDate(*until); err != nil {
		return usagef("%s", keepwatch.ErrorMessage(err))
	}
	if !keepwatch.ValidText(in.Customer, 200) || !keepwatch.ValidText(in.Product, 200) {
		return usagef("customer and product are at most 200 printable characters")
	}
	s, err := open()
	if err != nil {
		return err
	}
	defer s.Close()
	key := secret.New("kwe_")
	if _, err := s.CreateInstallation(ctx, in, secret.Hash(key)); err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, key)
	fmt.Fprintf(e.stderr, "licence %s added for %q; the enrollment key is shown only once\n", in.SLC, in.Customer)
	return nil
}

func adminLicenseCarePlus(ctx context.Context, e *env, fs *flag.FlagSet, args []string, open func() (*store.Store, error)) error {
	slc := slcFlag(fs)
	until := fs.String("until", "", "last day of Care Plus, `YYYY-MM-DD`")
	if err := flagsOnly(fs, args, "slc", "until"); err != nil {
		return err
	}
	norm, err := keepwatch.NormalizeSLC(*slc)
	if err != nil {
		return usagef("%s", keepwatch.ErrorMessage(err))
	}
	d, err := keepwatch.ParseDate(*until)
	if err != nil {
		return usagef("%s", keepwatch.ErrorMessage(err))
	}
	s, err := open()
	if err != nil {
		return err
	}
	defer s.Close()
	if err := s.SetCarePlus(ctx, norm, d); err != nil {
		return err
	}
	fmt.Fprintf(e.stderr, "Care Plus of %s now ends on %s\n", norm, d)
	return nil
}

func adminLicenseRotateKey(ctx context.Context, e *env, fs *flag.FlagSet, args []string, open func() (*store.Store, error)) error {
	slc := slcFlag(fs)
	if err := flagsOnly(fs, args, "slc"); err != nil {
		return err
	}
	norm, err := keepwatch.NormalizeSLC(*slc)
	if err != nil {
		return usagef("%s", keepwatch.ErrorMessage(err))
	}
	s, err := open()
	if err != nil {
		return err
	}
	defer s.Close()
	key := secret.New("kwe_")
	if err := s.SetEnrollmentKey(ctx, norm, secret.Hash(key)); err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, key)
	fmt.Fprintf(e.stderr, "enrollment key of %s rotated; the old key no longer enrolls, enrolled servers keep reporting\n", norm)
	return nil
}

func adminLicenseRevokeKey(ctx context.Context, e *env, fs *flag.FlagSet, args []string, open func() (*store.Store, error)) error {
	slc := slcFlag(fs)
	if err := flagsOnly(fs, args, "slc"); err != nil {
		return err
	}
	norm, err := keepwatch.NormalizeSLC(*slc)
	if err != nil {
		return usagef("%s", keepwatch.ErrorMessage(err))
	}
	s, err := open()
	if err != nil {
		return err
	}
	defer s.Close()
	if err := s.RevokeEnrollmentKey(ctx, norm); err != nil {
		return err
	}
	fmt.Fprintf(e.stderr, "enrollment key of %s revoked; nothing enrolls until rotate-key issues a new one, enrolled servers keep reporting\n", norm)
	return nil
}

func adminServerRequireRotation(ctx context.Context, e *env, fs *flag.FlagSet, args []string, open func() (*store.Store, error)) error {
	id := fs.String("id", "", "the recording server's `SERVER_ID`, as keepwatch agent status shows it")
	if err := flagsOnly(fs, args, "id"); err != nil {
		return err
	}
	s, err := open()
	if err != nil {
		return err
	}
	defer s.Close()
	if err := s.RequireRotation(ctx, *id); err != nil {
		return err
	}
	fmt.Fprintf(e.stderr, "server %s is asked to rotate its report key at its next report\n", *id)
	return nil
}

func adminServerRevoke(ctx context.Context, e *env, fs *flag.FlagSet, args []string, open func() (*store.Store, error)) error {
	id := fs.String("id", "", "the recording server's `SERVER_ID`, as keepwatch agent status shows it")
	if err := flagsOnly(fs, args, "id"); err != nil {
		return err
	}
	s, err := open()
	if err != nil {
		return err
	}
	defer s.Close()
	if err := s.RevokeServer(ctx, strings.ToLower(*id)); err != nil {
		return err
	}
	fmt.Fprintf(e.stderr, "server %s revoked; its reports are refused from now on\n", *id)
	return nil
}
