package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"keepwatch"
	"keepwatch/internal/protocol"
)

// Status is what `agent status` shows, from the running daemon or, when
// none runs, from the state directory. It never holds the report key.
type Status struct {
	Server     string                      `json:"server"`
	SLC        string                      `json:"slc"`
	Name       string                      `json:"name"`
	ServerID   string                      `json:"server_id"`
	Consent    bool                        `json:"consent"`
	Interval   int64                       `json:"heartbeat_interval_seconds"`
	Running    bool                        `json:"running"`
	LocalAPI   string                      `json:"local_api,omitempty"`
	Delivery   deliveryState               `json:"delivery,omitzero"`
	Conditions []protocol.PayloadCondition `json:"conditions"`
	Checks     []CheckStatus               `json:"checks,omitempty"`
	// Drives is the latest round of drive samples.
	Drives []protocol.PayloadDrive `json:"drives,omitempty"`
	Spool  SpoolStats              `json:"spool"`
}

// CheckStatus is a built-in check's last run.
type CheckStatus struct {
	Name    string    `json:"name"`
	Every   string    `json:"every"`
	LastRun time.Time `json:"last_run,omitzero"`
	Error   string    `json:"error,omitempty"`
}

func statusOf(st *State, sp SpoolStats) Status {
	return Status{Server: st.Server, SLC: st.SLC, Name: st.Name, ServerID: st.ServerID, Consent: st.Consent,
		Interval: st.Interval, Spool: sp, Conditions: []protocol.PayloadCondition{}}
}

// Local is a state directory opened by a one-shot command while no daemon
// runs on it. It holds the directory's lock until Close, so reports go
// through the same spool and sequence counter the daemon uses.
type Local struct {
	Dir   string
	State *State
	lock  *DirLock
	spool *Spool
	c     *courier
}

// OpenLocal locks and opens dir. ErrDaemonRunning means a daemon (or
// another command) holds it: talk to it with Connect instead.
func OpenLocal(dir string) (*Local, error) {
	lock, err := LockDir(dir)
	if err != nil {
		return nil, err
	}
	l := &Local{Dir: dir, lock: lock}
	if l.State, err = Load(dir); err != nil {
		lock.Unlock()
		return nil, err
	}
	if l.spool, err = OpenSpool(dir, l.State, 0); err != nil {
		lock.Unlock()
		return nil, err
	}
	return l, nil
}

// Close releases the spool and the lock.
func (l *Local) Close() error {
	err := l.spool.Close()
	return errors.Join(err, l.lock.Unlock())
}

func (l *Local) courier() (*courier, error) {
	if l.c != nil {
		return l.c, nil
	}
	client, err := NewClient(l.State.Server, l.State.CAFile)
	if err != nil {
		return nil, err
	}
	l.c, err = newCourier(l.spool, client, l.State, time.Now)
	return l.c, err
}

// Send records p (nil: a heartbeat) in the spool, then delivers the spool
// in order up to and including it. A report that could not be delivered
// stays in the spool for the daemon or the next command.
func (l *Local) Send(ctx context.Context, p *protocol.Payload) (uint64, protocol.ReportResponse, error) {
	var resp protocol.ReportResponse
	if !l.State.Consent {
		return 0, resp, errConsentOff
	}
	c, err := l.courier()
	if err != nil {
		return 0, resp, err
	}
	now := time.Now().UTC()
	if p != nil {
		if p.Conditions != nil {
			if err := validConditions(*p.Conditions); err != nil {
				return 0, resp, err
			}
		}
		if err := validEvents(p.Events, now); err != nil {
			return 0, resp, err
		}
	}
	kind := KindHeartbeat
	switch {
	case p == nil:
		p = &protocol.Payload{SentAt: &now}
	case p.Conditions != nil:
		kind = KindStatus
	case len(p.Events) > 0:
		kind = KindEvents
	}
	if p.SentAt == nil {
		p.SentAt = &now
	}
	if p.AgentVersion == "" && kind != KindHeartbeat {
		p.AgentVersion = agentVersion()
	}
	if kind == KindStatus {
		// These are the conditions the VMS knows now: the agent, when it
		// runs, goes on reporting them.
		if err := l.spool.SetVMSConditions(*p.Conditions); err != nil {
			return 0, resp, err
		}
	}
	seq, err := l.spool.Record(kind, now, p)
	if err != nil {
		return 0, resp, err
	}
	resp, err = c.flush(ctx, true, seq)
	if err == nil && (l.State.Pending || protocol.ValidInterval(resp.HeartbeatIntervalSeconds) && resp.HeartbeatIntervalSeconds != l.State.Interval) {
		// An accepted report also says a pending re-enrollment was
		// approved.
		l.State.Pending = false
		if protocol.ValidInterval(resp.HeartbeatIntervalSeconds) {
			l.State.Interval = resp.HeartbeatIntervalSeconds
		}
		err = l.saveState()
	}
	return seq, resp, err
}

func (l *Local) saveState() error {
	if st, err := l.spool.Stats(); err == nil && st.LastSeq > l.State.Seq {
		l.State.Seq = st.LastSeq
	}
	return l.State.Save(l.Dir)
}

// SetConsent records the customer's choice and tries to tell keepwatch.
// Withdrawing discards the undelivered reports and spools the withdrawal,
// which the daemon delivers later if keepwatch cannot be told now.
func (l *Local) SetConsent(ctx context.Context, on bool) (told bool, err error) {
	c, err := l.courier()
	if err != nil {
		return false, err
	}
	was := l.State.Consent
	l.State.Consent = on
	if err := l.saveState(); err != nil {
		return false, err
	}
	now := time.Now().UTC()
	var seq uint64
	if !on {
		if !was {
			return false, nil // keepwatch was told when it was withdrawn
		}
		if _, err := l.spool.DiscardAll(); err != nil {
			return false, err
		}
		off := false
		seq, err = l.spool.Record(KindConsent, now, &protocol.Payload{SentAt: &now, AgentVersion: agentVersion(), Consent: &off})
	} else {
		// Without the daemon's checks the conditions are unknown here: a
		// report with consent alone resumes monitoring and keeps the
		// conditions keepwatch holds; the daemon sends the full set.
		seq, err = l.spool.Record(KindConsent, now, &protocol.Payload{SentAt: &now, AgentVersion: agentVersion(), Consent: &on})
	}
	if err != nil {
		return false, err
	}
	if _, err := c.flush(ctx, on, seq); err != nil {
		return false, err
	}
	return true, nil
}

// Status describes the state directory while no daemon runs.
func (l *Local) Status() (Status, error) {
	sp, err := l.spool.Stats()
	if err != nil {
		return Status{}, err
	}
	s := statusOf(l.State, sp)
	if conds, err := l.spool.LastConditions(); err == nil && conds != nil {
		s.Conditions = conds
	}
	return s, nil
}

// Control talks to the daemon running on a state directory, through its
// local API.
type Control struct {
	base string
	http *http.Client
}

// Connect finds the daemon of dir by the address it wrote there.
func Connect(ctx context.Context, dir string) (*Control, error) {
	b, err := os.ReadFile(filepath.Join(dir, AddrFile))
	if err != nil {
		return nil, err
	}
	var ai addrInfo
	if err := json.Unmarshal(b, &ai); err != nil || CheckLoopback(ai.Addr) != nil {
		return nil, fmt.Errorf("%s: no usable local API address", AddrFile)
	}
	c := &Control{base: "http://" + ai.Addr, http: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{Proxy: nil}}}
	if _, err := c.Status(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// Attach opens dir for a one-shot command: directly when no daemon runs,
// else through the daemon's local API. It waits a little for a daemon that
// is starting or a command that holds the directory for a moment.
func Attach(ctx context.Context, dir string) (*Local, *Control, error) {
	if _, err := Load(dir); err != nil {
		return nil, nil, err
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		l, err := OpenLocal(dir)
		if err == nil {
			return l, nil, nil
		}
		if !errors.Is(err, ErrDaemonRunning) {
			return nil, nil, err
		}
		c, cerr := Connect(ctx, dir)
		if cerr == nil {
			return nil, c, nil
		}
		if time.Now().After(deadline) {
			return nil, nil, fmt.Errorf("%s is locked by another agent process whose local API does not answer: %v", dir, cerr)
		}
		select {
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (c *Control) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		var eb protocol.ErrorBody
		if json.Unmarshal(b, &eb) == nil && eb.Error.Code != "" {
			return keepwatch.Errorf(eb.Error.Code, "%s", eb.Error.Message)
		}
		return fmt.Errorf("local API: %s", strings.TrimSpace(string(b)))
	}
	return json.Unmarshal(b, out)
}

// Status asks the daemon for its status.
func (c *Control) Status(ctx context.Context) (Status, error) {
	var s Status
	err := c.do(ctx, http.MethodGet, "/v1/status", nil, &s)
	return s, err
}

// Recorded is the local API's answer to a request that may record a
// report; Seq is absent (0) when nothing needed recording.
type Recorded struct {
	Seq        uint64                      `json:"seq,omitempty"`
	Conditions []protocol.PayloadCondition `json:"conditions,omitempty"`
	Consent    *bool                       `json:"consent,omitempty"`
}

// SetConditions sets the conditions the VMS knows (and records events
// with them); force records a status report even if nothing changed.
func (c *Control) SetConditions(ctx context.Context, conds []protocol.PayloadCondition, events []protocol.PayloadEvent, force bool) (Recorded, error) {
	var r Recorded
	in := conditionsRequest{Conditions: &conds, Events: events, Force: force}
	err := c.do(ctx, http.MethodPut, "/v1/conditions", in, &r)
	return r, err
}

// RecordEvents records events now.
func (c *Control) RecordEvents(ctx context.Context, events []protocol.PayloadEvent) (Recorded, error) {
	var r Recorded
	err := c.do(ctx, http.MethodPost, "/v1/events", eventsRequest{Events: events}, &r)
	return r, err
}

// Heartbeat records a heartbeat now.
func (c *Control) Heartbeat(ctx context.Context) (Recorded, error) {
	var r Recorded
	err := c.do(ctx, http.MethodPost, "/v1/heartbeat", struct{}{}, &r)
	return r, err
}

// SetConsent changes consent through the daemon.
func (c *Control) SetConsent(ctx context.Context, on bool) (Recorded, error) {
	var r Recorded
	err := c.do(ctx, http.MethodPut, "/v1/consent", consentRequest{Consent: &on}, &r)
	return r, err
}

// WaitDelivered waits until keepwatch acknowledged report seq, or the
// daemon's delivery is paused or stopped, or ctx ends.
func (c *Control) WaitDelivered(ctx context.Context, seq uint64) (Status, error) {
	for {
		s, err := c.Status(ctx)
		if err != nil {
			return s, err
		}
		if s.Spool.LastAckedSeq >= seq {
			return s, nil
		}
		if s.Delivery.State == "paused" || s.Delivery.State == "stopped" {
			return s, fmt.Errorf("recorded as #%d, but delivery is %s: %s", seq, s.Delivery.State, s.Spool.LastError)
		}
		select {
		case <-ctx.Done():
			msg := s.Spool.LastError
			if msg == "" {
				msg = "no answer yet"
			}
			return s, fmt.Errorf("recorded as #%d in the spool and not yet acknowledged (%s); the agent keeps trying, do not send it again", seq, msg)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
