package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"keepwatch/internal/agent"
	"keepwatch/internal/protocol"
)

// agentCommand is one `keepwatch agent` command.
type agentCommand struct {
	name, synopsis, about string
	run                   func(ctx context.Context, e *env, fs *flag.FlagSet, args []string) error
}

var agentCommands = []agentCommand{
	{"enroll", "--server URL --slc SLC --key KEY --name NAME --state DIR --consent [--ca FILE]", `Enrolls this recording server with keepwatch under its installation's SLC
and enrollment key (from keepwatch admin license add): agrees a report key
with keepwatch and keeps the server's identity and key in --state. Prints
the server id on stdout. --consent records that the customer agreed to send
status information; without it nothing may be sent.`, agentEnroll},
	{"run", "--state DIR [--config FILE] [--debug] [--enroll-file FILE]", `Runs the agent daemon until interrupted: heartbeats at the interval
keepwatch dictates, the built-in checks of the configuration file (drives,
media database, cameras, licences), the loopback API the VMS reports
through, and a durable spool that keeps every report until keepwatch
acknowledged it. Run it under systemd, or as the Windows service
(agent install-service). docs/agent.md describes the configuration file.
With --enroll-file (what the Windows installer writes), a server not yet
enrolled waits for that file, enrolls from it, then deletes it.`, agentRun},
	{"send", "--state DIR [--condition KIND[:SUBJECT]]… [--event KIND[:SUBJECT]]… [--heartbeat]", `Sends one status report whose active conditions are exactly those given
(none = all clear), or with --heartbeat an empty report, then exits. Goes
through the running daemon if there is one (which adds the conditions its
own checks find). Kinds: camera_unreachable, storage_full, storage_low,
media_db_write_failed, license_exceeded, and the events archive_delete_failed,
file_delete_failed, archive_fatal_error, archive_operation_failed,
archive_move_failed; a kind keepwatch does not know is shown as an error.`, agentSend},
	{"rotate", "--state DIR", `Rotates this server's report key in-band: a new X25519 exchange sealed
under the current key. keepwatch switches to the new key at its first use
and refuses the old one from then on. Stop the agent first (the running
agent rotates by itself when keepwatch asks it to).`, agentRotate},
	{"consent", "--state DIR on|off", `Records that the customer consents (on) or withdraws consent (off), and
tells keepwatch, which shows the server as "consent withdrawn" rather than
unavailable. With consent off nothing else is sent.`, agentConsent},
	{"status", "--state DIR [--json]", `Shows the agent's enrollment, consent, delivery, spool and conditions:
from the running daemon if there is one, else as last recorded in --state.`, agentStatus},
	{"install-service", "--state DIR [--config FILE]", `Windows: installs the agent as a service that starts with the machine and
runs keepwatch agent run with these flags. Elsewhere run agent run under
systemd (docs/agent.md).`, agentInstallService},
	{"uninstall-service", "", `Windows: removes the agent's service.`, agentUninstallService},
}

func agentList(w io.Writer) {
	fmt.Fprintln(w, "\nCommands:")
	for _, c := range agentCommands {
		fmt.Fprintln(w, strings.TrimRight(fmt.Sprintf("  %-17s %s", c.name, c.synopsis), " "))
	}
}

func agentHelp(w io.Writer) {
	helpHeader(w, "agent <command> [flags]", `The agent runs on every recording server: it enrolls once, then sends
sealed heartbeats and status reports to keepwatch.`)
	agentList(w)
	fmt.Fprintln(w, "\nRun 'keepwatch agent <command> --help' for a command's flags; docs/agent.md\ndescribes the configuration file and the local API.")
}

func runAgent(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 {
		var b strings.Builder
		agentList(&b)
		return usageError{cmd: "agent", msg: "missing command", more: b.String()}
	}
	if isHelp(args[0]) {
		if args[0] == "help" && len(args) > 1 {
			return runAgent(ctx, e, append(append([]string{}, args[1:]...), "--help"))
		}
		agentHelp(e.stdout)
		return nil
	}
	for _, c := range agentCommands {
		if c.name == args[0] {
			name := "agent " + c.name
			fs := newFlags(e, name, strings.TrimSpace(name+" "+c.synopsis), c.about)
			return inCommand(name, c.run(ctx, e, fs, args[1:]))
		}
	}
	var b strings.Builder
	agentList(&b)
	return usageError{cmd: "agent", msg: fmt.Sprintf("unknown command %q", args[0]), more: b.String()}
}

func agentUninstallService(_ context.Context, e *env, fs *flag.FlagSet, args []string) error {
	if err := flagsOnly(fs, args); err != nil {
		return err
	}
	if err := agent.UninstallService(); err != nil {
		return err
	}
	fmt.Fprintf(e.stderr, "service %s removed\n", agent.ServiceName)
	return nil
}

func agentEnroll(ctx context.Context, e *env, fs *flag.FlagSet, args []string) error {
	var o agent.EnrollOptions
	var dir string
	fs.StringVar(&o.Server, "server", "", "keepwatch's `URL`, e.g. https://keepwatch.example.com:8443")
	fs.StringVar(&o.SLC, "slc", "", "the installation's Software License Code (`SLC`)")
	fs.StringVar(&o.Key, "key", "", "the installation's enrollment `KEY` (from keepwatch admin license add)")
	fs.StringVar(&o.Name, "name", "", "this recording server's `NAME`, as the dashboard shows it")
	fs.StringVar(&dir, "state", "", "keep this agent's identity, key and spool in `DIR` (created if missing)")
	fs.BoolVar(&o.Consent, "consent", false, "the customer consents to sending status information")
	fs.StringVar(&o.CAFile, "ca", "", "extra CA certificate `FILE` to trust, e.g. a self-signed keepwatch's <data>/tls/cert.pem")
	if err := flagsOnly(fs, args, "server", "slc", "key", "name", "state"); err != nil {
		return err
	}
	if !o.Consent {
		return usagef("without --consent nothing may be sent; ask the customer, then add --consent")
	}
	// The daemon holds the report key in memory: enrolling under it would
	// leave it sending with the old one.
	lock, err := agent.LockDir(dir)
	if errors.Is(err, agent.ErrDaemonRunning) {
		return fmt.Errorf("an agent is running on %s; stop it before enrolling again", dir)
	}
	if err != nil {
		return err
	}
	defer lock.Unlock()
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	old, _ := agent.Load(dir)
	// The state of the same server proves its current key, so the new
	// key replaces it at once rather than waiting for approval.
	o.Previous = old
	st, err := agent.Enroll(ctx, o)
	if err != nil {
		return err
	}
	if old != nil && old.ServerID == st.ServerID {
		// The same server enrolled again: its spool stays valid, and the
		// counter simply carries on.
		st.Seq = old.Seq
	}
	if err := st.Save(dir); err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, st.ServerID)
	if st.Pending {
		fmt.Fprintf(e.stderr, "%q in %s is already enrolled as server %s: this new enrollment waits for the integrator's approval "+
			"(dashboard or POST /api/v1/reenrollments/{id}/approve); the agent keeps its reports until then\n", st.Name, st.SLC, st.ServerID)
		return nil
	}
	fmt.Fprintf(e.stderr, "enrolled %q in %s as server %s; heartbeat every %ds\n", st.Name, st.SLC, st.ServerID, st.Interval)
	return nil
}

func agentRun(ctx context.Context, e *env, fs *flag.FlagSet, args []string) error {
	dir := fs.String("state", "", "the agent's state `DIR`, as given to agent enroll")
	cfgFile := fs.String("config", "", "configuration `FILE` (JSON, see docs/agent.md); without it only heartbeats and the local API run")
	debug := fs.Bool("debug", false, "debug logging")
	enrollFile := fs.String("enroll-file", "", "when the state directory is not enrolled, enroll from this `FILE` first (the Windows installer writes it), waiting for it and retrying until keepwatch answers")
	if err := flagsOnly(fs, args, "state"); err != nil {
		return err
	}
	cfg, err := agent.ParseConfig(strings.NewReader("{}"))
	if *cfgFile != "" {
		cfg, err = agent.LoadConfig(*cfgFile)
	}
	if err != nil {
		return err
	}
	if *enrollFile == "" {
		if _, err := agent.Load(*dir); err != nil {
			return err
		}
	}
	logOut := e.stderr
	if agent.IsService() {
		// The service manager gives no console: log next to the state.
		f, err := openServiceLog(*dir)
		if err != nil {
			return err
		}
		defer f.Close()
		logOut = f
	}
	d := &agent.Daemon{Dir: *dir, Config: cfg, Logger: logger(logOut, *debug)}
	run := d.Run
	if *enrollFile != "" {
		run = enrollThenRun(d, *enrollFile)
	}
	if agent.IsService() {
		return agent.RunService(run)
	}
	return run(ctx)
}

// openServiceLog opens <dir>/agent.log for appending, keeping one older
// file when it grew past 10 MiB.
func openServiceLog(dir string) (*os.File, error) {
	path := filepath.Join(dir, "agent.log")
	if fi, err := os.Stat(path); err == nil && fi.Size() > 10<<20 {
		os.Rename(path, path+".1")
	}
	return os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
}

func agentRotate(ctx context.Context, e *env, fs *flag.FlagSet, args []string) error {
	dir := fs.String("state", "", "the agent's state `DIR`, as given to agent enroll")
	if err := flagsOnly(fs, args, "state"); err != nil {
		return err
	}
	local, err := agent.OpenLocal(*dir)
	if errors.Is(err, agent.ErrDaemonRunning) {
		return fmt.Errorf("an agent is running on %s; stop it before rotating (or let it rotate when keepwatch asks)", *dir)
	}
	if err != nil {
		return err
	}
	defer local.Close()
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := local.Rotate(ctx); err != nil {
		return err
	}
	fmt.Fprintf(e.stderr, "report key of server %s rotated; the old key is refused from its first use\n", local.State.ServerID)
	return nil
}

func agentSend(ctx context.Context, e *env, fs *flag.FlagSet, args []string) error {
	var conds, events multiFlag
	dir := fs.String("state", "", "the agent's state `DIR`, as given to agent enroll")
	fs.Var(&conds, "condition", "an active condition `KIND[:SUBJECT]` (repeatable)")
	fs.Var(&events, "event", "an event `KIND[:SUBJECT]` that just happened (repeatable)")
	heartbeat := fs.Bool("heartbeat", false, "send an empty heartbeat instead of a status report")
	if err := flagsOnly(fs, args, "state"); err != nil {
		return err
	}
	if *heartbeat && (len(conds) > 0 || len(events) > 0) {
		return usagef("--heartbeat carries no conditions or events")
	}
	var p *protocol.Payload
	if !*heartbeat {
		var err error
		if p, err = agent.StatusPayload(conds, events, time.Now().UTC()); err != nil {
			return usagef("%s", err)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	local, ctl, err := agent.Attach(ctx, *dir)
	if err != nil {
		return err
	}
	if local != nil {
		defer local.Close()
		seq, resp, err := local.Send(ctx, p)
		if err != nil {
			if seq != 0 {
				fmt.Fprintf(e.stderr, "report #%d stays in the spool; it goes out with the next report or when the agent runs\n", seq)
			}
			return err
		}
		fmt.Fprintf(e.stderr, "accepted as #%d; server state %s; next heartbeat in %ds\n", resp.Seq, resp.State, resp.HeartbeatIntervalSeconds)
		return nil
	}
	var rec agent.Recorded
	if p == nil {
		rec, err = ctl.Heartbeat(ctx)
	} else {
		rec, err = ctl.SetConditions(ctx, *p.Conditions, p.Events, true)
	}
	if err != nil {
		return err
	}
	st, err := ctl.WaitDelivered(ctx, rec.Seq)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stderr, "accepted as #%d through the running agent; server state %s; %d conditions active\n", rec.Seq, st.Spool.LastAckState, len(st.Conditions))
	return nil
}

func agentConsent(ctx context.Context, e *env, fs *flag.FlagSet, args []string) error {
	dir := fs.String("state", "", "the agent's state `DIR`, as given to agent enroll")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || (pos[0] != "on" && pos[0] != "off") {
		return usagef("want on or off")
	}
	if err := required(fs, "state"); err != nil {
		return err
	}
	on := pos[0] == "on"
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	local, ctl, err := agent.Attach(ctx, *dir)
	if err != nil {
		return err
	}
	// keepwatch is told once, so the dashboard shows "consent withdrawn"
	// instead of an unavailable server (or resumes monitoring).
	if local != nil {
		defer local.Close()
		told, err := local.SetConsent(ctx, on)
		switch {
		case err != nil:
			fmt.Fprintf(e.stderr, "consent is %s locally, but keepwatch could not be told yet (the agent tells it when it can): %v\n", pos[0], err)
		case told:
			fmt.Fprintf(e.stderr, "consent is %s; keepwatch was told\n", pos[0])
		default:
			fmt.Fprintf(e.stderr, "consent was already %s\n", pos[0])
		}
		return nil
	}
	rec, err := ctl.SetConsent(ctx, on)
	if err != nil {
		return err
	}
	if rec.Seq == 0 {
		fmt.Fprintf(e.stderr, "consent was already %s\n", pos[0])
		return nil
	}
	if _, err := ctl.WaitDelivered(ctx, rec.Seq); err != nil {
		fmt.Fprintf(e.stderr, "consent is %s, but keepwatch could not be told yet (the agent keeps trying): %v\n", pos[0], err)
		return nil
	}
	fmt.Fprintf(e.stderr, "consent is %s; keepwatch was told\n", pos[0])
	return nil
}

func agentStatus(ctx context.Context, e *env, fs *flag.FlagSet, args []string) error {
	dir := fs.String("state", "", "the agent's state `DIR`, as given to agent enroll")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := flagsOnly(fs, args, "state"); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	local, ctl, err := agent.Attach(ctx, *dir)
	if err != nil {
		return err
	}
	var s agent.Status
	if local != nil {
		s, err = local.Status()
		local.Close()
	} else {
		s, err = ctl.Status(ctx)
	}
	if err != nil {
		return err
	}
	if *asJSON {
		b, _ := json.MarshalIndent(s, "", "  ")
		fmt.Fprintln(e.stdout, string(b))
		return nil
	}
	printStatus(e.stdout, s, time.Now())
	return nil
}

func printStatus(w io.Writer, s agent.Status, now time.Time) {
	ago := func(t time.Time) string {
		return fmt.Sprintf("%s (%s ago)", t.Local().Format(time.RFC3339), now.Sub(t).Round(time.Second))
	}
	consent := "on"
	if !s.Consent {
		consent = "off (nothing is sent)"
	}
	running := "not running"
	if s.Running {
		running = "running, local API on " + s.LocalAPI
		if s.Delivery.State != "" {
			running += "; delivery " + s.Delivery.State
			if !s.Delivery.Next.IsZero() && s.Delivery.Next.After(now) {
				running += fmt.Sprintf(", next attempt in %s", s.Delivery.Next.Sub(now).Round(time.Second))
			}
		}
	}
	lastAck := "never"
	if !s.Spool.LastAck.IsZero() {
		lastAck = ago(s.Spool.LastAck)
		if s.Spool.LastAckState != "" {
			lastAck += ", server state " + s.Spool.LastAckState
		}
	}
	spool := fmt.Sprintf("%d reports waiting", s.Spool.Depth)
	if s.Spool.Depth > 0 {
		spool += fmt.Sprintf(" (%d events), oldest recorded %s", s.Spool.PendingEvents, ago(s.Spool.Oldest))
	}
	spool += fmt.Sprintf("; limit %d", s.Spool.MaxReports)
	fmt.Fprintf(w, "server:        %s\ninstallation:  %s\nname:          %s\nserver id:     %s\nconsent:       %s\ninterval:      %ds\nagent:         %s\nlast ack:      %s\nsequence:      %d recorded, %d acknowledged\nspool:         %s\ndropped:       %d heartbeats, %d status reports (spool full)\n",
		s.Server, s.SLC, s.Name, s.ServerID, consent, s.Interval, running, lastAck, s.Spool.LastSeq, s.Spool.LastAckedSeq, spool, s.Spool.DroppedHeartbeats, s.Spool.DroppedStatus)
	if s.Spool.Discarded > 0 || s.Spool.Refused > 0 {
		fmt.Fprintf(w, "discarded:     %d at consent withdrawal or re-enrollment, %d refused by keepwatch\n", s.Spool.Discarded, s.Spool.Refused)
	}
	if s.Spool.LastError != "" {
		fmt.Fprintf(w, "last error:    %s: %s\n", s.Spool.LastErrorAt.Local().Format(time.RFC3339), s.Spool.LastError)
	}
	label := "conditions:"
	if !s.Running {
		label = "conditions (as last recorded):"
	}
	if len(s.Conditions) == 0 {
		fmt.Fprintf(w, "%-14s none\n", label)
	} else {
		fmt.Fprintf(w, "%s\n", label)
		for _, c := range s.Conditions {
			line := "  " + c.Kind
			if c.Subject != "" {
				line += " " + c.Subject
			}
			if c.Since != nil {
				line += " since " + c.Since.Local().Format(time.RFC3339)
			}
			if c.Message != "" {
				line += ": " + c.Message
			}
			fmt.Fprintln(w, line)
		}
	}
	if len(s.Checks) > 0 {
		fmt.Fprintln(w, "checks:")
		for _, c := range s.Checks {
			line := fmt.Sprintf("  %-15s every %s", c.Name, c.Every)
			if !c.LastRun.IsZero() {
				line += ", last run " + c.LastRun.Local().Format(time.RFC3339)
			}
			if c.Error != "" {
				line += ", could not look: " + c.Error
			}
			fmt.Fprintln(w, line)
		}
	}
}

func agentInstallService(_ context.Context, e *env, fs *flag.FlagSet, args []string) error {
	dir := fs.String("state", "", "the agent's state `DIR`, as given to agent enroll")
	cfgFile := fs.String("config", "", "configuration `FILE` (JSON, see docs/agent.md)")
	if err := flagsOnly(fs, args, "state"); err != nil {
		return err
	}
	absDir, err := filepath.Abs(*dir)
	if err != nil {
		return err
	}
	if _, err := agent.Load(absDir); err != nil {
		return err
	}
	absCfg := ""
	if *cfgFile != "" {
		if absCfg, err = filepath.Abs(*cfgFile); err != nil {
			return err
		}
		if _, err := agent.LoadConfig(absCfg); err != nil {
			return err
		}
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	if err := agent.InstallService(exe, absDir, absCfg); err != nil {
		return err
	}
	fmt.Fprintf(e.stderr, "service %s installed (starts automatically); start it now with: sc start %s\n", agent.ServiceName, agent.ServiceName)
	return nil
}
