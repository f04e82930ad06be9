package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"strings"

	"keepwatch"
	"keepwatch/internal/notify"
	"keepwatch/internal/secret"
	"keepwatch/internal/store"
)

const adminUsage = `usage: keepwatch admin [--data DIR | --db URL] <command>

  integrator add NAME --owner-email E          (password from stdin, or generated and printed once)
  user add --integrator NAME --email E --role owner|technician|viewer   (password as above)
  token create --integrator NAME --name N --role owner|technician|viewer   → prints the token
  license add --slc SLC --customer NAME --product P --cameras N --care-plus-until YYYY-MM-DD
                                               → prints the installation's enrollment key
  license care-plus --slc SLC --until YYYY-MM-DD
  license rotate-key --slc SLC                 → prints the new enrollment key
  server revoke --id SERVER_ID
  backup --to FILE                             (SQLite: a consistent copy while keepwatch runs)
  rotate-secrets                               (seal every report key and webhook secret under the
                                               current secret key; see docs/operations.md)

Credentials: --db-file FILE or KEEPWATCH_DB_URL instead of --db;
--secret-key-file FILE or KEEPWATCH_SECRET_KEY for the secret key.

Commands that produce a value print only that value on stdout; messages go
to stderr. Admin commands work on the data dir of a running server.
`

func runAdmin(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "admin", "admin [--data DIR | --db URL] <command>")
	fs.Usage = func() { fmt.Fprint(e.stderr, adminUsage) }
	dbFlags := addDatabaseFlags(fs, "data directory")
	keyFile := secretKeyFlag(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	rest := fs.Args()
	if len(rest) >= 1 && (rest[0] == "backup" || rest[0] == "rotate-secrets") {
		rest = append([]string{rest[0], ""}, rest[1:]...)
	}
	if len(rest) < 2 {
		fmt.Fprint(e.stderr, adminUsage)
		return usagef("missing command")
	}
	data, db, err := dbFlags.resolve(fs)
	if err != nil {
		return err
	}
	keys, err := secretKey(*keyFile)
	if err != nil {
		return err
	}
	run, ok := adminCommands[strings.TrimSpace(rest[0]+" "+rest[1])]
	if !ok {
		fmt.Fprint(e.stderr, adminUsage)
		return usagef("unknown admin command %q", rest[0]+" "+rest[1])
	}
	fs2 := newFlags(e, "admin "+rest[0]+" "+rest[1], "admin "+rest[0]+" "+rest[1]+" …")
	return run(ctx, e, fs2, rest[2:], func() (*store.Store, error) { return openStore(ctx, data, db, keys) })
}

type adminFunc func(ctx context.Context, e *env, fs *flag.FlagSet, args []string, open func() (*store.Store, error)) error

var adminCommands = map[string]adminFunc{
	"integrator add":     adminIntegratorAdd,
	"user add":           adminUserAdd,
	"token create":       adminTokenCreate,
	"license add":        adminLicenseAdd,
	"license care-plus":  adminLicenseCarePlus,
	"license rotate-key": adminLicenseRotateKey,
	"server revoke":      adminServerRevoke,
	"backup":             adminBackup,
	"rotate-secrets":     adminRotateSecrets,
}

func adminBackup(ctx context.Context, e *env, fs *flag.FlagSet, args []string, open func() (*store.Store, error)) error {
	to := fs.String("to", "", "file to write the copy to (must not exist)")
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

// password reads a password from piped stdin, or generates one and prints
// it once on stdout.
func password(e *env) (string, error) {
	if e.stdinIsPipe {
		line, _ := bufio.NewReader(e.stdin).ReadString('\n')
		line = strings.TrimRight(line, "\r\n")
		if line != "" {
			if len(line) < 10 {
				return "", usagef("the password must be at least 10 characters")
			}
			return line, nil
		}
		// empty stdin: generate one
	}
	p := secret.New("")[:24]
	fmt.Fprintln(e.stdout, p)
	fmt.Fprintln(e.stderr, "generated password printed above; it is shown only once")
	return p, nil
}

func required(fs *flag.FlagSet, names ...string) error {
	for _, n := range names {
		if fs.Lookup(n).Value.String() == "" {
			return usagef("--%s is required", n)
		}
	}
	return nil
}

// flagsOnly parses a command that takes flags and no arguments, and
// checks that the required flags are set.
func flagsOnly(fs *flag.FlagSet, args []string, names ...string) error {
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if err := noArgs(pos); err != nil {
		return err
	}
	return required(fs, names...)
}

func noArgs(pos []string) error {
	if len(pos) > 0 {
		return usagef("unexpected argument %q", pos[0])
	}
	return nil
}

func adminIntegratorAdd(ctx context.Context, e *env, fs *flag.FlagSet, args []string, open func() (*store.Store, error)) error {
	email := fs.String("owner-email", "", "e-mail of the integrator's first owner")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || strings.TrimSpace(pos[0]) == "" {
		return usagef("want exactly one integrator NAME")
	}
	if err := required(fs, "owner-email"); err != nil {
		return err
	}
	if !validEmail(*email) {
		return usagef("--owner-email %q is not an e-mail address", *email)
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
	pw, err := password(e)
	if err != nil {
		return err
	}
	if _, err := s.CreateUser(ctx, in.ID, strings.ToLower(*email), secret.HashPassword(pw), keepwatch.RoleOwner); err != nil {
		return err
	}
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
	return fs.String("integrator", "", "integrator name")
}

func roleFlag(fs *flag.FlagSet) *string {
	return fs.String("role", "", "owner, technician or viewer")
}

func adminUserAdd(ctx context.Context, e *env, fs *flag.FlagSet, args []string, open func() (*store.Store, error)) error {
	integ, role := integratorFlag(fs), roleFlag(fs)
	email := fs.String("email", "", "the user's e-mail (login)")
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
	s, err := open()
	if err != nil {
		return err
	}
	defer s.Close()
	in, err := s.IntegratorByName(ctx, *integ)
	if err != nil {
		return err
	}
	pw, err := password(e)
	if err != nil {
		return err
	}
	if _, err := s.CreateUser(ctx, in.ID, strings.ToLower(*email), secret.HashPassword(pw), r); err != nil {
		return err
	}
	fmt.Fprintf(e.stderr, "user %s added to %q as %s\n", *email, in.Name, r)
	return nil
}

func adminTokenCreate(ctx context.Context, e *env, fs *flag.FlagSet, args []string, open func() (*store.Store, error)) error {
	integ, role := integratorFlag(fs), roleFlag(fs)
	name := fs.String("name", "", "what the token is for")
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

func slcFlag(fs *flag.FlagSet) *string { return fs.String("slc", "", "Software License Code") }

func adminLicenseAdd(ctx context.Context, e *env, fs *flag.FlagSet, args []string, open func() (*store.Store, error)) error {
	slc := slcFlag(fs)
	customer := fs.String("customer", "", "customer name")
	product := fs.String("product", "", "product, e.g. \"XProtect Corporate 2016\"")
	cameras := fs.Int("cameras", -1, "licensed camera count")
	until := fs.String("care-plus-until", "", "last day of Care Plus (YYYY-MM-DD)")
	if err := flagsOnly(fs, args, "slc", "customer", "product", "care-plus-until"); err != nil {
		return err
	}
	if *cameras < 0 {
		return usagef("--cameras is required (0 or more)")
	}
	in := keepwatch.Installation{Customer: strings.TrimSpace(*customer), Product: strings.TrimSpace(*product), Cameras: *cameras}
	var err error
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
	until := fs.String("until", "", "last day of Care Plus (YYYY-MM-DD)")
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

func adminServerRevoke(ctx context.Context, e *env, fs *flag.FlagSet, args []string, open func() (*store.Store, error)) error {
	id := fs.String("id", "", "server id (as agent status shows it)")
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
