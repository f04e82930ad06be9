// Package ingest serves the agents' side of keepwatch: enrollment and
// sealed reports (protocol v1, see docs/protocol.md). It owns the servers'
// credentials, sequence numbers and rate limits. Every report is answered
// only after it is durable: a heartbeat's sequence number is spent by a
// group commit, a status report is applied in its own transaction; then
// the monitor learns the server is alive.
package ingest

import (
	"context"
	"crypto/ecdh"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"time"

	"keepwatch"
	"keepwatch/internal/metrics"
	"keepwatch/internal/protocol"
	"keepwatch/internal/ratelimit"
	"keepwatch/internal/respond"
)

// maxEnrollBody bounds an enrollment request.
const maxEnrollBody = 16 << 10

// Liveness is the monitor, as ingest tells it what it committed.
type Liveness interface {
	Apply(r keepwatch.ServerRecord)
}

// Handler serves /ingest/v1/.
type Handler struct {
	Store    Store
	Liveness Liveness
	// Interval is the heartbeat interval agents are told.
	Interval time.Duration
	Now      func() time.Time
	Logger   *slog.Logger
	// Publish receives the changes of each applied report, once committed.
	Publish func([]keepwatch.Change)

	// Per-server pace: reports per second and burst (defaults 50/s, 500:
	// far above any heartbeat, enough for a spool draining after an outage).
	ServerRate  float64
	ServerBurst int
	// MaxPendingReports bounds the reports (status reports, events,
	// servers coming back: each a transaction of its own) waiting for the
	// database at once (default 64: the heartbeats' group commit waits for the
	// same database behind them); beyond it reports are answered
	// unavailable with a Retry-After of 5 to 15 s.
	MaxPendingReports int
	// KeepAlive is the idle time agents are told an HTTPS connection is
	// worth keeping (default 15 s): agents with a longer interval close
	// theirs after each report, so keepwatch holds few connections.
	KeepAlive time.Duration

	accepted  *metrics.Counter
	refused   *metrics.Counter
	datagrams *metrics.Counter
	// Penalty boxes per source address: only refusals take tokens, so
	// legitimate traffic is never limited, while guessing enrollment keys
	// or spraying forged reports soon is.
	badEnrolls *ratelimit.Keyed
	badReports *ratelimit.Keyed

	creds       *creds
	committer   *committer
	statusSlots chan struct{}
}

// NewHandler wires a handler and registers its metrics.
func NewHandler(h Handler, reg *metrics.Registry) *Handler {
	if h.Now == nil {
		h.Now = time.Now
	}
	if h.Logger == nil {
		h.Logger = slog.Default()
	}
	if h.ServerRate == 0 {
		h.ServerRate, h.ServerBurst = 50, 500
	}
	if h.MaxPendingReports == 0 {
		h.MaxPendingReports = 64
	}
	h.statusSlots = make(chan struct{}, h.MaxPendingReports)
	if h.KeepAlive == 0 {
		h.KeepAlive = 15 * time.Second
	}
	if h.Publish == nil {
		h.Publish = func([]keepwatch.Change) {}
	}
	h.creds, h.committer = newCreds(h.Store), newCommitter(h.Store)
	h.badEnrolls = ratelimit.NewKeyed(10.0/60, 10)
	h.badReports = ratelimit.NewKeyed(10, 100)
	h.accepted = reg.NewCounter("keepwatch_reports_accepted_total", "Reports accepted, by type (heartbeat, status, enroll).", "type")
	h.datagrams = reg.NewCounter("keepwatch_heartbeat_datagrams_total", "Heartbeat datagrams by outcome: accepted, replayed, use_https (answered: send it by HTTPS), unanswered (did not authenticate, or its address is refused for a while), dropped (too many waiting).", "outcome")
	h.refused = reg.NewCounter("keepwatch_reports_refused_total", "Reports and enrollments refused, by error code.", "code")
	return &h
}

// Run commits heartbeats until ctx ends. Stop the HTTP server first: the
// requests in flight wait for their commits.
func (h *Handler) Run(ctx context.Context) { h.committer.run(ctx) }

// Apply merges stored server records (enrollments, revocations, Care Plus
// changes, other nodes' state changes) into the credentials this node
// holds.
func (h *Handler) Apply(recs []keepwatch.ServerRecord) {
	for _, r := range recs {
		h.creds.apply(r)
	}
}

// Cached counts the servers whose credentials this node holds.
func (h *Handler) Cached() int { return h.creds.len() }

// Register adds the ingest routes to mux.
func (h *Handler) Register(mux *http.ServeMux) {
	mux.HandleFunc("POST "+protocol.EnrollPath, h.enroll)
	mux.HandleFunc("POST "+protocol.ReportPath, h.report)
}

// Refused returns how many requests were refused with code (for tests).
func (h *Handler) Refused(code string) uint64 { return h.refused.Value(code) }

// Accepted returns how many reports of a type were accepted.
func (h *Handler) Accepted(typ string) uint64 { return h.accepted.Value(typ) }

func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	code := keepwatch.ErrorCode(err)
	h.refused.Inc(code)
	if respond.Status(code) < 500 {
		h.Logger.Debug("ingest refused", "path", r.URL.Path, "remote", r.RemoteAddr, "code", code)
	}
	respond.Error(w, r, h.Logger, err)
}

// source is the client address a penalty box is keyed by.
func source(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// limited answers rate_limited with Retry-After.
func (h *Handler) limited(w http.ResponseWriter, r *http.Request, wait time.Duration, what string) {
	w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
	h.fail(w, r, keepwatch.Errorf(keepwatch.ERATELIMITED, "%s; retry in %s", what, wait.Round(time.Second)))
}

func (h *Handler) enroll(w http.ResponseWriter, r *http.Request) {
	if wait := h.badEnrolls.Blocked(source(r), h.Now()); wait > 0 {
		h.limited(w, r, wait, "too many failed enrollments from this address")
		return
	}
	var req protocol.EnrollRequest
	if err := respond.DecodeJSON(w, r, maxEnrollBody, &req); err != nil {
		h.fail(w, r, err)
		return
	}
	resp, err := h.doEnroll(r, req)
	if err != nil {
		if keepwatch.ErrorCode(err) == keepwatch.EUNAUTHORIZED {
			h.badEnrolls.Allow(source(r), h.Now())
		}
		h.fail(w, r, err)
		return
	}
	h.accepted.Inc("enroll")
	respond.JSON(w, http.StatusCreated, resp)
}

func (h *Handler) doEnroll(r *http.Request, req protocol.EnrollRequest) (protocol.EnrollResponse, error) {
	var resp protocol.EnrollResponse
	slc, err := keepwatch.NormalizeSLC(req.SLC)
	if err != nil {
		return resp, err
	}
	if req.Name == "" || !keepwatch.ValidText(req.Name, keepwatch.MaxServerNameLen) {
		return resp, keepwatch.Errorf(keepwatch.EINVALID, "name must be 1 to %d printable characters", keepwatch.MaxServerNameLen)
	}
	if !keepwatch.ValidText(req.AgentVersion, 64) {
		return resp, keepwatch.Errorf(keepwatch.EINVALID, "agent_version is too long or not printable")
	}
	agentPub, err := ecdh.X25519().NewPublicKey(req.PublicKey)
	if err != nil {
		return resp, keepwatch.Errorf(keepwatch.EINVALID, "public_key must be a 32-byte X25519 public key (base64)")
	}
	in, keyHash, err := h.Store.EnrollmentInfo(r.Context(), slc)
	if err != nil {
		return resp, err
	}
	got := sha256.Sum256([]byte(req.EnrollmentKey))
	if subtle.ConstantTimeCompare(got[:], keyHash) != 1 {
		return resp, keepwatch.Errorf(keepwatch.EUNAUTHORIZED, "unknown SLC or wrong enrollment key")
	}
	if in.CarePlusUntil.Before(keepwatch.DateOf(h.Now())) {
		return resp, keepwatch.Errorf(keepwatch.ECAREPLUSINACTIVE, "the Care Plus subscription of this installation ended on %s", in.CarePlusUntil)
	}
	if !req.Consent {
		return resp, keepwatch.Errorf(keepwatch.ECONSENTREQUIRED, "the customer has not consented to sending status information")
	}
	idStr, err := h.Store.ServerIDByName(r.Context(), in.ID, req.Name)
	if err != nil {
		return resp, err
	}
	id := protocol.NewServerID()
	if idStr != "" {
		if id, err = protocol.ParseServerID(idStr); err != nil {
			return resp, err
		}
	}
	priv, err := ecdh.X25519().GenerateKey(nil)
	if err != nil {
		return resp, err
	}
	serverPub := priv.PublicKey().Bytes()
	key, err := protocol.DeriveKey(priv, agentPub, req.PublicKey, serverPub, id)
	if err != nil {
		return resp, keepwatch.Errorf(keepwatch.EINVALID, "public_key is not usable")
	}
	interval := h.Interval
	if _, err := h.Store.Enroll(r.Context(), keepwatch.Enrollment{
		InstallationID: in.ID, ID: id.String(), Name: req.Name, Key: key, Interval: interval, AgentVersion: req.AgentVersion,
	}); err != nil {
		return resp, err
	}
	if _, err := h.creds.refresh(r.Context(), id); err != nil {
		return resp, err
	}
	h.Logger.Info("server enrolled", "slc", slc, "server", id.String(), "name", req.Name, "remote", r.RemoteAddr)
	return protocol.EnrollResponse{
		ServerID: id.String(), ServerPublicKey: serverPub,
		HeartbeatIntervalSeconds: int64(interval / time.Second), Protocol: protocol.Version,
	}, nil
}

// errForged is the one answer to a report that does not authenticate,
// whatever the reason: unknown server, wrong key, tampered bytes.
var errForged = keepwatch.Errorf(keepwatch.EUNAUTHORIZED, "the report does not authenticate")

func (h *Handler) report(w http.ResponseWriter, r *http.Request) {
	if wait := h.badReports.Blocked(source(r), h.Now()); wait > 0 {
		h.limited(w, r, wait, "too many refused reports from this address")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, protocol.MaxEnvelope))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			h.fail(w, r, keepwatch.Errorf(keepwatch.ETOOLARGE, "a report is at most %d bytes", protocol.MaxEnvelope))
		} else {
			h.fail(w, r, keepwatch.Errorf(keepwatch.EINVALID, "could not read the report"))
		}
		return
	}
	resp, typ, err := h.accept(r.Context(), body, false)
	if err != nil {
		var lim *limitError
		switch code := keepwatch.ErrorCode(err); {
		case errors.As(err, &lim):
			h.limited(w, r, lim.wait, "this server sends too fast")
			return
		case errors.Is(err, errBusy):
			// Jittered, so that the agents turned away together do not
			// come back together.
			w.Header().Set("Retry-After", strconv.Itoa(5+rand.IntN(10)))
		case code == keepwatch.EUNAUTHORIZED || code == keepwatch.EINVALID || code == keepwatch.ETOOLARGE:
			h.badReports.Allow(source(r), h.Now())
		}
		h.fail(w, r, err)
		return
	}
	h.accepted.Inc(typ)
	respond.JSON(w, http.StatusOK, resp)
}

// accept authenticates and applies one envelope. It answers only what
// the store committed.
func (h *Handler) accept(ctx context.Context, body []byte, datagram bool) (protocol.ReportResponse, string, error) {
	var resp protocol.ReportResponse
	hdr, err := protocol.ParseHeader(body)
	if err != nil {
		return resp, "", keepwatch.Errorf(keepwatch.EINVALID, "not a v1 report envelope")
	}
	c, err := h.creds.lookup(ctx, hdr.ID)
	if err != nil {
		return resp, "", err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.revoked {
		return resp, "", errForged
	}
	pt, err := protocol.Open(c.key[:], body)
	if err != nil {
		return resp, "", errForged
	}
	if hdr.Seq <= c.lastSeq {
		return resp, "", errReplayed(hdr.Seq)
	}
	if hdr.Seq > keepwatch.MaxSeq || c.lastSeq > 0 && hdr.Seq-c.lastSeq > keepwatch.MaxSeqJump {
		return resp, "", keepwatch.Errorf(keepwatch.EINVALID, "sequence number %d jumps too far above the last accepted one", hdr.Seq)
	}
	now := h.Now()
	if wait := c.limit.Allow(now, h.ServerRate, h.ServerBurst); wait > 0 {
		return resp, "", &limitError{wait}
	}
	if c.carePlusUntil.Before(keepwatch.DateOf(now)) {
		return resp, "", keepwatch.Errorf(keepwatch.ECAREPLUSINACTIVE, "the Care Plus subscription of this installation ended on %s", c.carePlusUntil)
	}
	rep, err := parsePayload(pt, now)
	if err != nil {
		return resp, "", err
	}
	if datagram && (rep.Status || len(rep.Events) > 0 || rep.Consent != nil) {
		return resp, "", errUseHTTPS
	}
	withdrawing := rep.Consent != nil && !*rep.Consent
	granting := rep.Consent != nil && *rep.Consent
	if c.state == keepwatch.ServerConsentWithdrawn && !granting && !withdrawing {
		return resp, "", keepwatch.Errorf(keepwatch.ECONSENTREQUIRED, "consent was withdrawn for this server; send consent: true to resume")
	}
	rep.ServerID, rep.Seq, rep.ReceivedAt, rep.Interval = hdr.ID.String(), hdr.Seq, now, h.Interval
	typ := "status"
	if !rep.Status {
		typ = "heartbeat"
	}
	state, err := h.apply(ctx, c, rep)
	if err != nil {
		return resp, "", err
	}
	return protocol.ReportResponse{
		Seq: hdr.Seq, State: string(state),
		HeartbeatIntervalSeconds: int64(h.Interval / time.Second),
		ServerTime:               now.UTC().Format(time.RFC3339Nano),
		KeepAliveSeconds:         int64(h.KeepAlive / time.Second),
	}, typ, nil
}

// apply makes a report durable: a plain heartbeat of a reporting server
// through the group commit, anything else (a status report, events, a
// consent change, a server coming back) in a transaction of its own. The
// caller holds c.mu.
func (h *Handler) apply(ctx context.Context, c *cred, rep keepwatch.Report) (keepwatch.ServerState, error) {
	plain := !rep.Status && len(rep.Events) == 0 && rep.Consent == nil && c.state == keepwatch.ServerOK && !offsetChanged(c, rep)
	if plain {
		out, err := h.committer.commit(ctx, keepwatch.Beat{ID: rep.ServerID, Seq: rep.Seq, At: rep.ReceivedAt, IntervalMS: rep.Interval.Milliseconds()})
		if err != nil {
			return "", err
		}
		switch out {
		case keepwatch.BeatAccepted:
			c.lastSeq = rep.Seq
			h.seen(c, rep, keepwatch.ServerOK)
			return keepwatch.ServerOK, nil
		case keepwatch.BeatReplayed:
			return "", errReplayed(rep.Seq)
		}
		// The server's state changed meanwhile (another node declared it
		// unavailable): the heartbeat brings it back, as a full report.
	}
	select {
	case h.statusSlots <- struct{}{}:
		defer func() { <-h.statusSlots }()
	default:
		return "", errBusy
	}
	applied, err := h.Store.ApplyReport(ctx, rep)
	if err != nil {
		return "", err
	}
	c.lastSeq, c.state = rep.Seq, applied.State
	if rep.ClockOffset != nil {
		c.clockOffsetMS = rep.ClockOffset.Milliseconds()
	}
	h.seen(c, rep, applied.State)
	if len(applied.Changes) > 0 {
		h.Publish(applied.Changes)
	}
	return applied.State, nil
}

// seen tells the monitor what a committed report says of the server's
// liveness (a server enrolled moments ago is new to it).
func (h *Handler) seen(c *cred, rep keepwatch.Report, state keepwatch.ServerState) {
	h.Liveness.Apply(keepwatch.ServerRecord{ID: rep.ServerID, InstallationID: c.installationID, State: state,
		LastSeen: rep.ReceivedAt.UnixMilli(), IntervalMS: rep.Interval.Milliseconds(), CarePlusUntil: c.carePlusUntil})
}

func errReplayed(seq uint64) error {
	return keepwatch.Errorf(keepwatch.EREPLAYED, "sequence number %d is not above the last accepted one", seq)
}

// errBusy turns a report away while MaxPendingReports wait for the
// database: answered at once with a Retry-After, rather than queued until
// the agent gives up and sends it again.
var errBusy = keepwatch.Errorf(keepwatch.EUNAVAILABLE, "keepwatch is busy; try again in a few seconds")

// limitError is a server over its pace.
type limitError struct{ wait time.Duration }

func (e *limitError) Error() string { return "rate limited" }

// SkewThreshold is the clock offset below which a server's times are
// taken as they are (network latency and ordinary drift).
const SkewThreshold = 2 * time.Minute

// offsetChanged reports whether a report moves the server's known clock
// offset enough to store it.
func offsetChanged(c *cred, rep keepwatch.Report) bool {
	if rep.ClockOffset == nil {
		return false
	}
	d := rep.ClockOffset.Milliseconds() - c.clockOffsetMS
	return d >= 30_000 || d <= -30_000
}

// parsePayload decodes and validates a report's plaintext.
func parsePayload(pt []byte, now time.Time) (keepwatch.Report, error) {
	var rep keepwatch.Report
	if len(pt) == 0 {
		return rep, nil
	}
	var p protocol.Payload
	if err := json.Unmarshal(pt, &p); err != nil {
		return rep, keepwatch.Errorf(keepwatch.EINVALID, "the report payload is not valid JSON")
	}
	if !keepwatch.ValidText(p.AgentVersion, 64) {
		return rep, keepwatch.Errorf(keepwatch.EINVALID, "agent_version is too long or not printable")
	}
	rep.AgentVersion, rep.Consent = p.AgentVersion, p.Consent
	// A server whose clock is off (by more than network jitter) has its
	// times moved onto keepwatch's clock, and the offset is shown.
	shift := func(t time.Time) time.Time { return t }
	if p.TransmittedAt != nil {
		off := p.TransmittedAt.Sub(now)
		if off < SkewThreshold && off > -SkewThreshold {
			off = 0
		}
		off = off.Round(time.Second)
		rep.ClockOffset = &off
		shift = func(t time.Time) time.Time { return t.Add(-off) }
	}
	if p.SentAt != nil {
		if at := shift(p.SentAt.UTC()); !at.After(now) {
			rep.RecordedAt = at
		}
	}
	if p.Conditions != nil {
		rep.Status = true
		if len(*p.Conditions) > keepwatch.MaxConditions {
			return rep, keepwatch.Errorf(keepwatch.EINVALID, "a report carries at most %d conditions", keepwatch.MaxConditions)
		}
		rep.Conditions = make([]keepwatch.Condition, 0, len(*p.Conditions))
		for _, c := range *p.Conditions {
			if err := validItem(c.Kind, c.Subject, c.Message); err != nil {
				return rep, err
			}
			if c.Kind == keepwatch.KindServerUnavailable {
				return rep, keepwatch.Errorf(keepwatch.EINVALID, "server_unavailable is set by keepwatch, not reported")
			}
			cond := keepwatch.Condition{Kind: c.Kind, Subject: c.Subject, Severity: keepwatch.SeverityOf(c.Kind), Message: c.Message}
			if c.Since != nil {
				cond.Since = shift(c.Since.UTC())
			}
			rep.Conditions = append(rep.Conditions, cond)
		}
	}
	if len(p.Events) > keepwatch.MaxEvents {
		return rep, keepwatch.Errorf(keepwatch.EINVALID, "a report carries at most %d events", keepwatch.MaxEvents)
	}
	for _, ev := range p.Events {
		if err := validItem(ev.Kind, ev.Subject, ev.Message); err != nil {
			return rep, err
		}
		at := ev.At.UTC()
		if !at.IsZero() {
			at = shift(at)
		}
		if at.IsZero() || at.After(now.Add(time.Hour)) {
			// An event without a time, or from a clock far ahead, is placed
			// at reception rather than in the future.
			at = now.UTC()
		}
		rep.Events = append(rep.Events, keepwatch.Event{Kind: ev.Kind, Subject: ev.Subject, Severity: keepwatch.SeverityOf(ev.Kind), At: at, Message: ev.Message})
	}
	return rep, nil
}

func validItem(kind, subject, message string) error {
	if !keepwatch.ValidKind(kind) {
		return keepwatch.Errorf(keepwatch.EINVALID, "kind must be lower-case letters, digits and _ (at most %d)", keepwatch.MaxKindLen)
	}
	if !keepwatch.ValidText(subject, keepwatch.MaxSubjectLen) {
		return keepwatch.Errorf(keepwatch.EINVALID, "subject is too long or not printable")
	}
	if !keepwatch.ValidText(message, keepwatch.MaxMessageLen) {
		return keepwatch.Errorf(keepwatch.EINVALID, "message is too long or not printable")
	}
	return nil
}

// Store is what ingest reads and writes.
type Store interface {
	EnrollmentInfo(ctx context.Context, slc string) (keepwatch.Installation, []byte, error)
	ServerIDByName(ctx context.Context, installationID int64, name string) (string, error)
	Enroll(ctx context.Context, e keepwatch.Enrollment) (string, error)
	ServerRecord(ctx context.Context, id string) (keepwatch.ServerRecord, error)
	ApplyReport(ctx context.Context, r keepwatch.Report) (keepwatch.Applied, error)
	CommitHeartbeats(ctx context.Context, beats []keepwatch.Beat) ([]keepwatch.BeatOutcome, error)
}
