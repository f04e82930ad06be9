package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"strings"
	"time"
	"unicode/utf16"
)

// An enrollment file lets an installer hand the agent what `agent enroll`
// takes on its command line, so a silent roll-out (msiexec /qn from a GPO
// or Intune) needs no network at install time: the agent enrolls at its
// first start, retrying until keepwatch answers. The Windows installer
// writes it from its KEEPWATCH_* properties:
//
//	[enroll]
//	server=https://keepwatch.example.com:8443
//	slc=M01-2345-6789
//	key=…
//	name=RS-01        (optional: the computer's name)
//	consent=1
//	ca=C:\keepwatch\cert.pem   (optional)
//
// The file holds the installation's enrollment key: the agent removes it
// once enrolled.

// ReadEnrollFile parses an enrollment file. ok is false when the file does
// not exist or names no server (an installer ran without the properties).
func ReadEnrollFile(path string) (o EnrollOptions, ok bool, err error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return o, false, nil
	}
	if err != nil {
		return o, false, err
	}
	o, err = parseEnrollFile(b)
	if err != nil {
		return o, false, fmt.Errorf("%s: %w", path, err)
	}
	if o.Server == "" {
		return o, false, nil
	}
	switch {
	case o.SLC == "":
		return o, false, fmt.Errorf("%s: slc is missing", path)
	case o.Key == "":
		return o, false, fmt.Errorf("%s: key is missing", path)
	case !o.Consent:
		return o, false, fmt.Errorf("%s: the customer's consent is not recorded (consent=1); nothing may be sent without it", path)
	}
	return o, true, nil
}

// parseEnrollFile reads the INI text Windows' profile API writes: ANSI or
// UTF-16 with a byte-order mark, CRLF, keys in any case.
func parseEnrollFile(b []byte) (EnrollOptions, error) {
	var o EnrollOptions
	text := decodeIni(b)
	section := ""
	for n, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == ';' || line[0] == '#' {
			continue
		}
		if line[0] == '[' && line[len(line)-1] == ']' {
			section = strings.ToLower(strings.TrimSpace(line[1 : len(line)-1]))
			continue
		}
		if section != "enroll" && section != "" {
			continue
		}
		k, v, found := strings.Cut(line, "=")
		if !found {
			return o, fmt.Errorf("line %d: want key=value", n+1)
		}
		k, v = strings.ToLower(strings.TrimSpace(k)), strings.TrimSpace(v)
		switch k {
		case "server":
			o.Server = v
		case "slc":
			o.SLC = v
		case "key":
			o.Key = v
		case "name":
			o.Name = v
		case "ca":
			o.CAFile = v
		case "consent":
			switch strings.ToLower(v) {
			case "1", "yes", "true", "on":
				o.Consent = true
			case "", "0", "no", "false", "off":
				o.Consent = false
			default:
				return o, fmt.Errorf("line %d: consent must be 1 or 0", n+1)
			}
		default:
			// A typo must not silently drop a value.
			return o, fmt.Errorf("line %d: unknown key %q", n+1, k)
		}
	}
	return o, nil
}

func decodeIni(b []byte) string {
	switch {
	case bytes.HasPrefix(b, []byte{0xFF, 0xFE}):
		b = b[2:]
		u := make([]uint16, len(b)/2)
		for i := range u {
			u[i] = uint16(b[2*i]) | uint16(b[2*i+1])<<8
		}
		return string(utf16.Decode(u))
	case bytes.HasPrefix(b, []byte{0xEF, 0xBB, 0xBF}):
		return string(b[3:])
	}
	return string(b)
}

// FirstStart enrolls a state directory from an enrollment file before the
// daemon starts (`agent run --enroll-file`).
type FirstStart struct {
	Dir, File string
	Logger    *slog.Logger
	// Poll is how often to look again for the file or for an enrollment
	// made by hand (default 10 s).
	Poll time.Duration
	// MaxBackoff caps the wait between failed enrollments (default 5 min;
	// the first retry comes after 1 s).
	MaxBackoff time.Duration
	// Hostname names the server when the file names none (default
	// os.Hostname).
	Hostname func() (string, error)
}

// Run returns once Dir is enrolled: at once if it already is (a leftover
// file is then removed, the enrollment stays as it is), otherwise after
// enrolling from File, waiting for File to appear and retrying failed
// attempts with backoff, each time reading File again (an installer run
// again with corrected properties rewrites it). It ends early only when
// ctx does, or when the state directory cannot be written.
func (f FirstStart) Run(ctx context.Context) error {
	if f.Logger == nil {
		f.Logger = slog.Default()
	}
	if f.Poll == 0 {
		f.Poll = 10 * time.Second
	}
	if f.MaxBackoff == 0 {
		f.MaxBackoff = 5 * time.Minute
	}
	if f.Hostname == nil {
		f.Hostname = os.Hostname
	}
	backoff := time.Second
	said := ""
	say := func(level slog.Level, msg string, args ...any) {
		// Waiting is logged once, not at every look.
		if key := fmt.Sprint(msg, args); key != said {
			said = key
			f.Logger.Log(ctx, level, msg, args...)
		}
	}
	for {
		if f.enrolled() {
			return nil
		}
		o, ok, err := ReadEnrollFile(f.File)
		wait := f.Poll
		switch {
		case err != nil:
			say(slog.LevelError, "enrollment file unusable; waiting for a corrected one", "err", err)
		case !ok:
			say(slog.LevelInfo, "not enrolled; waiting for an enrollment file or keepwatch agent enroll", "state", f.Dir, "file", f.File)
		default:
			if o.Name == "" {
				if o.Name, err = f.Hostname(); err != nil {
					return fmt.Errorf("name this server (name= in %s): %w", f.File, err)
				}
			}
			done, err := f.enroll(ctx, o)
			if done || ctx.Err() != nil {
				return err
			}
			// A wrong key or an unreachable keepwatch alike: try again
			// later, spread out so a fleet rolled out together does not
			// come back in step.
			wait = time.Duration(float64(backoff) * (0.8 + 0.4*rand.Float64()))
			backoff = min(2*backoff, f.MaxBackoff)
			f.Logger.Warn("enrollment failed; trying again", "server", o.Server, "slc", o.SLC, "name", o.Name, "in", wait.Round(time.Millisecond), "err", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
}

// enrolled reports whether Dir holds an enrollment, removing a leftover
// enrollment file (it holds the installation's key).
func (f FirstStart) enrolled() bool {
	if _, err := Load(f.Dir); err != nil {
		return false
	}
	if err := os.Remove(f.File); err == nil {
		f.Logger.Info("already enrolled; removed the enrollment file (to enroll again use keepwatch agent enroll)", "file", f.File)
	}
	return true
}

// enroll makes one attempt. done is true when Dir is enrolled afterwards,
// or when err must end the start (the state cannot be saved).
func (f FirstStart) enroll(ctx context.Context, o EnrollOptions) (done bool, err error) {
	lock, err := LockDir(f.Dir)
	if errors.Is(err, ErrDaemonRunning) {
		// `agent enroll` by hand at this moment: look again later.
		return false, err
	}
	if err != nil {
		return true, err
	}
	defer lock.Unlock()
	if _, err := Load(f.Dir); err == nil {
		return true, nil
	}
	actx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	st, err := Enroll(actx, o)
	if err != nil {
		return false, err
	}
	if err := st.Save(f.Dir); err != nil {
		return true, err
	}
	if err := os.Remove(f.File); err != nil && !errors.Is(err, os.ErrNotExist) {
		f.Logger.Warn("enrolled, but could not remove the enrollment file, which holds the enrollment key: remove it", "file", f.File, "err", err)
	}
	f.Logger.Info("enrolled from the enrollment file", "server", st.Server, "slc", st.SLC, "name", st.Name, "server_id", st.ServerID)
	return true, nil
}
