package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"time"

	"keepwatch/internal/agent"
	"keepwatch/internal/protocol"
)

const agentUsage = `usage: keepwatch agent <command>

  enroll --server URL --slc SLC --key KEY --name NAME --state DIR [--consent] [--ca FILE]
  send   --state DIR [--condition KIND[:SUBJECT]]… [--event KIND[:SUBJECT]]… [--heartbeat]
         one status report whose active conditions are exactly those given
         (none = all clear), or with --heartbeat an empty report; then exit
  consent --state DIR on|off
  status --state DIR [--json]
`

func runAgent(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 || args[0] == "help" || args[0] == "--help" || args[0] == "-h" {
		fmt.Fprint(e.stderr, agentUsage)
		if len(args) == 0 {
			return usagef("missing command")
		}
		return nil
	}
	fs := newFlags(e, "agent "+args[0], "agent "+args[0]+" …")
	fs.Usage = func() { fmt.Fprint(e.stderr, agentUsage) }
	switch args[0] {
	case "enroll":
		return agentEnroll(ctx, e, fs, args[1:])
	case "send":
		return agentSend(ctx, e, fs, args[1:])
	case "consent":
		return agentConsent(ctx, e, fs, args[1:])
	case "status":
		return agentStatus(e, fs, args[1:])
	}
	fmt.Fprint(e.stderr, agentUsage)
	return usagef("unknown agent command %q", args[0])
}

func agentEnroll(ctx context.Context, e *env, fs *flag.FlagSet, args []string) error {
	var o agent.EnrollOptions
	var dir string
	fs.StringVar(&o.Server, "server", "", "keepwatch URL, e.g. https://keepwatch.example.com:8443")
	fs.StringVar(&o.SLC, "slc", "", "the installation's Software License Code")
	fs.StringVar(&o.Key, "key", "", "the installation's enrollment key")
	fs.StringVar(&o.Name, "name", "", "this recording server's name")
	fs.StringVar(&dir, "state", "", "state directory of this agent")
	fs.BoolVar(&o.Consent, "consent", false, "the customer consents to sending status information")
	fs.StringVar(&o.CAFile, "ca", "", "extra CA certificate to trust (e.g. a self-signed server's cert.pem)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if err := noArgs(pos); err != nil {
		return err
	}
	if err := required(fs, "server", "slc", "key", "name", "state"); err != nil {
		return err
	}
	if !o.Consent {
		return usagef("without --consent nothing may be sent; ask the customer, then add --consent")
	}
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	st, err := agent.Enroll(ctx, o)
	if err != nil {
		return err
	}
	if err := st.Save(dir); err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, st.ServerID)
	fmt.Fprintf(e.stderr, "enrolled %q in %s as server %s; heartbeat every %ds\n", st.Name, st.SLC, st.ServerID, st.Interval)
	return nil
}

func agentSend(ctx context.Context, e *env, fs *flag.FlagSet, args []string) error {
	var conds, events multiFlag
	dir := fs.String("state", "", "state directory of this agent")
	fs.Var(&conds, "condition", "an active condition KIND[:SUBJECT] (repeatable)")
	fs.Var(&events, "event", "an event KIND[:SUBJECT] that just happened (repeatable)")
	heartbeat := fs.Bool("heartbeat", false, "send an empty heartbeat instead of a status report")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if err := noArgs(pos); err != nil {
		return err
	}
	if err := required(fs, "state"); err != nil {
		return err
	}
	if *heartbeat && (len(conds) > 0 || len(events) > 0) {
		return usagef("--heartbeat carries no conditions or events")
	}
	s, err := agent.NewSender(*dir)
	if err != nil {
		return err
	}
	if !s.State.Consent {
		return fmt.Errorf("consent is off for this agent; nothing is sent (keepwatch agent consent on)")
	}
	var p *protocol.Payload
	if !*heartbeat {
		if p, err = agent.StatusPayload(conds, events, time.Now().UTC()); err != nil {
			return usagef("%s", err)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	resp, err := s.Send(ctx, p)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stderr, "accepted as #%d; server state %s; next heartbeat in %ds\n", resp.Seq, resp.State, resp.HeartbeatIntervalSeconds)
	return nil
}

func agentConsent(ctx context.Context, e *env, fs *flag.FlagSet, args []string) error {
	dir := fs.String("state", "", "state directory of this agent")
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
	s, err := agent.NewSender(*dir)
	if err != nil {
		return err
	}
	on := pos[0] == "on"
	// Tell keepwatch once, so the dashboard shows "consent withdrawn"
	// instead of an unavailable server (or resumes monitoring).
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	now := time.Now().UTC()
	_, sendErr := s.Send(ctx, &protocol.Payload{SentAt: &now, Consent: &on})
	s.State.Consent = on
	if err := s.State.Save(*dir); err != nil {
		return err
	}
	if sendErr != nil {
		fmt.Fprintf(e.stderr, "consent is %s locally, but keepwatch could not be told: %v\n", pos[0], sendErr)
		return nil
	}
	fmt.Fprintf(e.stderr, "consent is %s; keepwatch was told\n", pos[0])
	return nil
}

func agentStatus(e *env, fs *flag.FlagSet, args []string) error {
	dir := fs.String("state", "", "state directory of this agent")
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if err := noArgs(pos); err != nil {
		return err
	}
	if err := required(fs, "state"); err != nil {
		return err
	}
	st, err := agent.Load(*dir)
	if err != nil {
		return err
	}
	if *asJSON {
		view := *st
		view.Key = nil // never print the key
		b, _ := json.MarshalIndent(view, "", "  ")
		fmt.Fprintln(e.stdout, string(b))
		return nil
	}
	lastAck := "never"
	if !st.LastAck.IsZero() {
		lastAck = fmt.Sprintf("%s (%s ago, server state %s)", st.LastAck.Format(time.RFC3339), time.Since(st.LastAck).Round(time.Second), st.LastAckState)
	}
	consent := "on"
	if !st.Consent {
		consent = "off (nothing is sent)"
	}
	fmt.Fprintf(e.stdout, "server:        %s\ninstallation:  %s\nname:          %s\nserver id:     %s\nconsent:       %s\ninterval:      %ds\nlast sequence: %d\nlast ack:      %s\n",
		st.Server, st.SLC, st.Name, st.ServerID, consent, st.Interval, st.Seq, lastAck)
	if st.LastError != "" {
		fmt.Fprintf(e.stdout, "last error:    %s\n", st.LastError)
	}
	return nil
}
