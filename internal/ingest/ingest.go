// Package ingest serves the agents' side of keepwatch: enrollment and
// sealed reports (protocol v1, see docs/protocol.md). It owns the servers'
// credentials, sequence numbers and rate limits. Every report is answered
// only after it is durable: a heartbeat's sequence number is spent by a
// group commit, a status report is applied in its own transaction; then
// the monitor learns the server is alive.
package ingest

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
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
	// KeyLifetime is how long an enrollment key enrolls after it was
	// issued (default keepwatch.EnrollmentKeyLifetime).
	KeyLifetime time.Duration
	Now         func() time.Time
	Logger      *slog.Logger
	// Publish receives the changes of each applied report, once committed.
	Publish func([]keepwatch.Change)

	// Per-server pace: reports per second and burst (defaults 50/s, 500:
	// far above any heartbeat, enough for a spool draining after an outage).
	ServerRate  float64
	ServerBurst int
	// Flood holds the events-per-minute cap of each server (the store
	// holds the same policy for the open-incidents cap).
	Flood keepwatch.FloodPolicy
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
	if h.KeyLifetime == 0 {
		h.KeyLifetime = keepwatch.EnrollmentKeyLifetime
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

// Warm adds stored records read at start-up for servers not cached yet,
// so that a restarted node does not pay one database read per server on
// each server's first report.
func (h *Handler) Warm(recs []keepwatch.ServerRecord) {
	for _, r := range recs {
		h.creds.warm(r)
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

// limited answers rate_limited with Retry-After, in whole seconds rounded
// up (at least 1), and the message says the same wait.
func (h *Handler) limited(w http.ResponseWriter, r *http.Request, wait time.Duration, what string) {
	secs := max(1, int(math.Ceil(wait.Seconds())))
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	h.fail(w, r, keepwatch.Errorf(keepwatch.ERATELIMITED, "%s; retry in %ds", what, secs))
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
	status, resp, err := h.doEnroll(r, req)
	if err != nil {
		if keepwatch.ErrorCode(err) == keepwatch.EUNAUTHORIZED {
			h.badEnrolls.Allow(source(r), h.Now())
		}
		h.fail(w, r, err)
		return
	}
	h.accepted.Inc("enroll")
	respond.JSON(w, status, resp)
}

func (h *Handler) doEnroll(r *http.Request, req protocol.EnrollRequest) (int, protocol.EnrollResponse, error) {
	var resp protocol.EnrollResponse
	slc, err := keepwatch.NormalizeSLC(req.SLC)
	if err != nil {
		return 0, resp, err
	}
	if req.Name == "" || !keepwatch.ValidText(req.Name, keepwatch.MaxServerNameLen) {
		return 0, resp, keepwatch.Errorf(keepwatch.EINVALID, "name must be 1 to %d printable characters", keepwatch.MaxServerNameLen)
	}
	if !keepwatch.ValidText(req.AgentVersion, 64) {
		return 0, resp, keepwatch.Errorf(keepwatch.EINVALID, "agent_version is too long or not printable")
	}
	agentPub, err := ecdh.X25519().NewPublicKey(req.PublicKey)
	if err != nil {
		return 0, resp, keepwatch.Errorf(keepwatch.EINVALID, "public_key must be a 32-byte X25519 public key (base64)")
	}
	if len(req.MAC) != sha256.Size {
		return 0, resp, keepwatch.Errorf(keepwatch.EINVALID, "mac must be a 32-byte HMAC-SHA256 (base64)")
	}
	in, keyHash, err := h.Store.EnrollmentInfo(r.Context(), slc)
	if err != nil {
		return 0, resp, err
	}
	// The enrollment key never travels: the request proves it with a MAC
	// over what it asks for, so a TLS-terminating proxy neither learns the
	// key nor can substitute its own public key.
	enrollKey := protocol.EnrollMACKeyFromHash(keyHash)
	if len(keyHash) != sha256.Size || !hmac.Equal(req.MAC, protocol.EnrollRequestMAC(enrollKey, slc, req.Name, req.PublicKey)) {
		return 0, resp, keepwatch.Errorf(keepwatch.EUNAUTHORIZED, "unknown SLC or wrong enrollment key")
	}
	if h.Now().After(in.EnrollmentKeyIssued.Add(h.KeyLifetime)) {
		return 0, resp, keepwatch.Errorf(keepwatch.EKEYEXPIRED, "the enrollment key of this installation expired on %s; ask for a new one",
			in.EnrollmentKeyIssued.Add(h.KeyLifetime).UTC().Format(time.DateOnly))
	}
	if in.CarePlusUntil.Before(keepwatch.DateOf(h.Now())) {
		return 0, resp, keepwatch.Errorf(keepwatch.ECAREPLUSINACTIVE, "the Care Plus subscription of this installation ended on %s", in.CarePlusUntil)
	}
	if !req.Consent {
		return 0, resp, keepwatch.Errorf(keepwatch.ECONSENTREQUIRED, "the customer has not consented to sending status information")
	}
	idStr, err := h.Store.ServerIDByName(r.Context(), in.ID, req.Name)
	if err != nil {
		return 0, resp, err
	}
	id := protocol.NewServerID()
	pending := false
	if idStr != "" {
		if id, err = protocol.ParseServerID(idStr); err != nil {
			return 0, resp, err
		}
		// A known name: the enrollment key alone does not take the server
		// over. An agent that proves it holds the current report key
		// replaces it at once; any other waits for the integrator.
		pending = !h.provesCurrentKey(r.Context(), id, req)
	}
	priv, err := ecdh.X25519().GenerateKey(nil)
	if err != nil {
		return 0, resp, err
	}
	serverPub := priv.PublicKey().Bytes()
	key, err := protocol.DeriveKey(priv, agentPub, req.PublicKey, serverPub, id)
	if err != nil {
		return 0, resp, keepwatch.Errorf(keepwatch.EINVALID, "public_key is not usable")
	}
	interval := h.Interval
	e := keepwatch.Enrollment{InstallationID: in.ID, ID: id.String(), Name: req.Name, Key: key, Interval: interval, AgentVersion: req.AgentVersion}
	if pending {
		if _, err := h.Store.RequestReenrollment(r.Context(), e, source(r)); err != nil {
			return 0, resp, err
		}
	} else if _, err := h.Store.Enroll(r.Context(), e); err != nil {
		return 0, resp, err
	}
	if _, err := h.creds.refresh(r.Context(), id); err != nil {
		return 0, resp, err
	}
	status := http.StatusCreated
	if pending {
		status = http.StatusAccepted
		h.Logger.Warn("re-enrollment waits for approval", "slc", slc, "server", id.String(), "name", req.Name, "remote", r.RemoteAddr)
	} else {
		h.Logger.Info("server enrolled", "slc", slc, "server", id.String(), "name", req.Name, "remote", r.RemoteAddr)
	}
	secs := int64(interval / time.Second)
	return status, protocol.EnrollResponse{
		ServerID: id.String(), ServerPublicKey: serverPub,
		HeartbeatIntervalSeconds: secs, Protocol: protocol.Version, Pending: pending,
		MAC: protocol.EnrollAnswerMAC(enrollKey, slc, req.Name, req.PublicKey, serverPub, id, secs, pending),
	}, nil
}

// provesCurrentKey reports whether a re-enrollment carries a valid proof
// of the server's current report key.
func (h *Handler) provesCurrentKey(ctx context.Context, id protocol.ServerID, req protocol.EnrollRequest) bool {
	if req.ServerID != id.String() || len(req.Proof) != sha256.Size {
		return false
	}
	c, err := h.creds.lookup(ctx, id)
	if err != nil {
		return false
	}
	c.mu.Lock()
	auth := c.auth
	c.mu.Unlock()
	return hmac.Equal(req.Proof, protocol.ReenrollProof(auth[:], id, req.PublicKey))
}

// errForged is the one answer to a report that does not authenticate,
// whatever the reason: unknown server, wrong key, tampered bytes.
var errForged = keepwatch.Errorf(keepwatch.EUNAUTHORIZED, "the report does not authenticate")

func (h *Handler) report(w http.ResponseWriter, r *http.Request) {
	// The penalty box holds only an address's unauthenticated junk: a
	// report that authenticates is never refused for other traffic from
	// its address (many servers share one NAT), it is paced per server.
	blocked := h.badReports.Blocked(source(r), h.Now())
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, protocol.MaxEnvelope))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			err = keepwatch.Errorf(keepwatch.ETOOLARGE, "a report is at most %d bytes", protocol.MaxEnvelope)
		} else {
			err = keepwatch.Errorf(keepwatch.EINVALID, "could not read the report")
		}
		h.junk(w, r, blocked, err)
		return
	}
	a, err := h.accept(r.Context(), body, blocked, false)
	if err != nil {
		if a.auth == nil {
			h.junk(w, r, blocked, err)
			return
		}
		h.failAuthenticated(w, r, a, err)
		return
	}
	h.accepted.Inc(a.typ)
	h.writeAuthenticated(w, a, http.StatusOK, a.resp)
}

// junk answers a request that did not authenticate; it counts against the
// sender's address, and an address over its allowance is refused at once.
func (h *Handler) junk(w http.ResponseWriter, r *http.Request, blocked time.Duration, err error) {
	if blocked > 0 {
		h.limited(w, r, blocked, "too many refused reports from this address")
		return
	}
	if keepwatch.ErrorCode(err) != keepwatch.EUNAVAILABLE && keepwatch.ErrorCode(err) != keepwatch.EINTERNAL {
		h.badReports.Allow(source(r), h.Now())
	}
	h.fail(w, r, err)
}

// answer is what accept learned of a report: once the envelope
// authenticated, auth is the key that MACs the answer.
type answer struct {
	resp protocol.ReportResponse
	typ  string
	id   protocol.ServerID
	seq  uint64
	auth []byte
}

// failAuthenticated refuses an authenticated report, with the answer MAC.
func (h *Handler) failAuthenticated(w http.ResponseWriter, r *http.Request, a answer, err error) {
	var lim *limitError
	if errors.As(err, &lim) {
		secs := max(1, int(math.Ceil(lim.wait.Seconds())))
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		err = keepwatch.Errorf(keepwatch.ERATELIMITED, "this server sends too fast; retry in %ds", secs)
	}
	code := keepwatch.ErrorCode(err)
	h.refused.Inc(code)
	status := respond.Status(code)
	switch {
	case status < 500 || errors.Is(err, errBusy):
	case r.Context().Err() != nil:
		// The sender gave up waiting (its own timeout, or it went away):
		// nothing failed here, and it sends the report again.
		h.Logger.Debug("sender gone before its answer", "path", r.URL.Path, "err", err)
	default:
		h.Logger.Error("request failed", "path", r.URL.Path, "err", err)
	}
	switch {
	case errors.Is(err, errBusy):
		// Jittered, so that the agents turned away together do not come
		// back together.
		w.Header().Set("Retry-After", strconv.Itoa(5+rand.IntN(10)))
	case code == keepwatch.EUNAVAILABLE:
		w.Header().Set("Retry-After", "5")
	}
	var body protocol.ErrorBody
	body.Error.Code, body.Error.Message = code, keepwatch.ErrorMessage(err)
	h.writeAuthenticated(w, a, status, body)
}

// writeAuthenticated writes an answer with its Keepwatch-MAC header: the
// agent acts only on answers that carry a valid one.
func (h *Handler) writeAuthenticated(w http.ResponseWriter, a answer, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":{"code":"internal","message":"internal error"}}`)
	}
	b = append(b, '\n')
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set(protocol.MACHeader, base64.StdEncoding.EncodeToString(protocol.AnswerMAC(a.auth, a.id, a.seq, status, b)))
	w.WriteHeader(status)
	w.Write(b)
}

// accept authenticates and applies one envelope. It answers only what
// the store committed. While the sender's address is blocked, only
// servers this node already holds are looked up (junk costs no query). A
// datagram carries a plain heartbeat only.
func (h *Handler) accept(ctx context.Context, body []byte, blocked time.Duration, datagram bool) (answer, error) {
	var a answer
	hdr, err := protocol.ParseHeader(body)
	if err != nil {
		return a, keepwatch.Errorf(keepwatch.EINVALID, "not a v1 report envelope")
	}
	a.id, a.seq = hdr.ID, hdr.Seq
	var c *cred
	if blocked > 0 {
		if c = h.creds.cached(hdr.ID); c == nil {
			return a, errForged
		}
	} else if c, err = h.creds.lookup(ctx, hdr.ID); err != nil {
		return a, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	pt, err := protocol.Open(c.key[:], body)
	if err != nil && c.hasNext && !c.revoked {
		// The first envelope under the rotated key switches the server to
		// it: the old key is refused from then on.
		if npt, nerr := protocol.Open(c.next[:], body); nerr == nil {
			rev, perr := h.Store.PromoteNextKey(ctx, hdr.ID.String())
			if perr != nil {
				return a, perr
			}
			c.key, c.hasNext, c.rotate, c.keyRev = c.next, false, false, rev
			copy(c.auth[:], protocol.AuthKey(c.key[:]))
			h.Logger.Info("report key rotated", "server", hdr.ID.String())
			pt, err = npt, nil
		}
	}
	if err != nil {
		if c.hasPending && !c.revoked {
			if _, perr := protocol.Open(c.pending[:], body); perr == nil {
				a.auth = bytes.Clone(c.pendingAuth[:])
				return a, keepwatch.Errorf(keepwatch.EREENROLLPENDING, "this key waits for the integrator's approval of the new enrollment")
			}
		}
		return a, errForged
	}
	a.auth = bytes.Clone(c.auth[:])
	if c.revoked {
		return a, keepwatch.Errorf(keepwatch.EUNAUTHORIZED, "this server was revoked by the operator")
	}
	if hdr.Seq <= c.lastSeq {
		return a, errReplayed(hdr.Seq)
	}
	if hdr.Seq > keepwatch.MaxSeq || c.lastSeq > 0 && hdr.Seq-c.lastSeq > keepwatch.MaxSeqJump {
		return a, keepwatch.Errorf(keepwatch.EINVALID, "sequence number %d jumps too far above the last accepted one", hdr.Seq)
	}
	now := h.Now()
	if wait := c.limit.Allow(now, h.ServerRate, h.ServerBurst); wait > 0 {
		return a, &limitError{wait}
	}
	if c.carePlusUntil.Before(keepwatch.DateOf(now)) {
		return a, keepwatch.Errorf(keepwatch.ECAREPLUSINACTIVE, "the Care Plus subscription of this installation ended on %s", c.carePlusUntil)
	}
	rep, err := parsePayload(pt, now)
	if err != nil {
		return a, err
	}
	if datagram && (rep.Status || len(rep.Events) > 0 || rep.Consent != nil || rep.RotateKey != nil) {
		return a, errUseHTTPS
	}
	withdrawing := rep.Consent != nil && !*rep.Consent
	granting := rep.Consent != nil && *rep.Consent
	// While consent is withdrawn only a report that grants it again is
	// applied; the withdrawal itself may be repeated (a retry whose first
	// answer was lost) and changes nothing.
	if c.state == keepwatch.ServerConsentWithdrawn && !granting && !withdrawing {
		return a, keepwatch.Errorf(keepwatch.ECONSENTREQUIRED, "consent was withdrawn for this server; send consent: true to resume")
	}
	if withdrawing {
		rep.Status, rep.Conditions, rep.Events = false, nil, nil
	}
	h.paceEvents(c, &rep, now)
	rep.ServerID, rep.Seq, rep.ReceivedAt, rep.Interval = hdr.ID.String(), hdr.Seq, now, h.Interval
	refresh := h.judgePath(c, &rep, now)
	if datagram && (refresh || c.rotate) {
		// A datagram's answer carries neither request: the agent sends
		// this heartbeat again over HTTPS, whose answer does.
		return a, errUseHTTPS
	}
	var rotated []byte
	if rep.RotateKey != nil {
		if rotated, err = h.rotate(ctx, c, hdr.ID, rep.RotateKey); err != nil {
			return a, err
		}
	}
	a.typ = "status"
	if !rep.Status {
		a.typ = "heartbeat"
	}
	state, err := h.apply(ctx, c, rep)
	if err != nil {
		return a, err
	}
	a.resp = protocol.ReportResponse{
		Seq: hdr.Seq, State: string(state),
		HeartbeatIntervalSeconds: int64(h.Interval / time.Second),
		ServerTime:               now.UTC().Format(time.RFC3339Nano),
		Refresh:                  refresh,
		RotateKey:                c.rotate && rotated == nil,
		ServerPublicKey:          rotated,
		KeepAliveSeconds:         int64(h.KeepAlive / time.Second),
	}
	return a, nil
}

// rotate answers an in-band request for a new report key: a fresh X25519
// exchange, sealed under the current key, whose result is kept as the
// next key until the agent first uses it. It returns keepwatch's public
// key. The caller holds c.mu.
func (h *Handler) rotate(ctx context.Context, c *cred, id protocol.ServerID, agentPubBytes []byte) ([]byte, error) {
	agentPub, err := ecdh.X25519().NewPublicKey(agentPubBytes)
	if err != nil {
		return nil, keepwatch.Errorf(keepwatch.EINVALID, "rotate.public_key must be a 32-byte X25519 public key (base64)")
	}
	priv, err := ecdh.X25519().GenerateKey(nil)
	if err != nil {
		return nil, err
	}
	serverPub := priv.PublicKey().Bytes()
	key, err := protocol.DeriveKey(priv, agentPub, agentPubBytes, serverPub, id)
	if err != nil {
		return nil, keepwatch.Errorf(keepwatch.EINVALID, "rotate.public_key is not usable")
	}
	rev, err := h.Store.SetNextKey(ctx, id.String(), key)
	if err != nil {
		return nil, err
	}
	copy(c.next[:], key)
	c.hasNext, c.keyRev = true, rev
	return serverPub, nil
}

// judgePath checks what a report says of the path from its server: a gap
// in the status reports' own numbers means one was lost on the way (the
// gap is recorded as a status_report_lost event; the report itself
// restores the full state); a heartbeat that says a status report was
// sent which keepwatch never accepted asks for a full refresh; a report
// whose transmitted_at lies far behind the server's usual transit was held
// back on the way, and is recorded as heartbeat_delayed, not as a sign of
// life. It reports whether to ask the agent for a full status report now.
// The caller holds c.mu.
func (h *Handler) judgePath(c *cred, rep *keepwatch.Report, now time.Time) bool {
	refresh := false
	transit, timed := int64(0), !rep.TransmittedAt.IsZero()
	if timed {
		transit = now.Sub(rep.TransmittedAt).Milliseconds()
	}
	// Only a plain heartbeat is judged held back: a report that carries
	// events, a consent change or a rotation is applied for what it says.
	plain := !rep.Status && len(rep.Events) == 0 && len(rep.HeldEvents) == 0 && rep.Consent == nil && rep.RotateKey == nil
	if rep.Status {
		if rep.StatusSeq > 0 && c.statusSeq > 0 && rep.StatusSeq > c.statusSeq+1 {
			rep.Events = append(rep.Events, keepwatch.Event{Kind: keepwatch.KindStatusReportLost, Severity: keepwatch.SeverityOf(keepwatch.KindStatusReportLost),
				At: now.UTC(), Message: fmt.Sprintf("status reports #%d to #%d of this server never arrived; this report restored its full state", c.statusSeq+1, rep.StatusSeq-1)})
		}
		// A status report sets the transit baseline afresh (after a clock
		// correction on the server, for one).
		if timed {
			c.transitMS, c.transitKnown = transit, true
		}
		return false
	}
	if rep.StatusSeq > c.statusSeq {
		refresh = true // a status report was sent that keepwatch never accepted
	}
	if !timed {
		return refresh
	}
	if plain && c.transitKnown && transit-c.transitMS > maxDelay(h.Interval).Milliseconds() {
		late := time.Duration(transit-c.transitMS) * time.Millisecond
		rep.Delayed = true
		rep.Events = append(rep.Events, keepwatch.Event{Kind: keepwatch.KindHeartbeatDelayed, Severity: keepwatch.SeverityOf(keepwatch.KindHeartbeatDelayed),
			At: now.UTC(), Message: fmt.Sprintf("a report arrived %s later than this server's reports usually take: it was held back on the way (or the server's clock was set back) and is not counted as a sign of life", late.Round(time.Second))})
		return true
	}
	if !c.transitKnown || transit < c.transitMS {
		c.transitMS, c.transitKnown = transit, true
	}
	return refresh
}

// maxDelay is how much later than its server's usual transit a heartbeat
// may arrive and still count as a sign of life: one interval and 30
// seconds, so a heartbeat held back can make a dead server look alive for
// at most that much longer.
func maxDelay(interval time.Duration) time.Duration { return interval + 30*time.Second }

// apply makes a report durable: a plain heartbeat of a reporting server
// through the group commit, anything else (a status report, events, a
// consent change, a server coming back) in a transaction of its own. The
// caller holds c.mu.
func (h *Handler) apply(ctx context.Context, c *cred, rep keepwatch.Report) (keepwatch.ServerState, error) {
	plain := !rep.Status && len(rep.Events) == 0 && len(rep.HeldEvents) == 0 && len(rep.Drives) == 0 && rep.Consent == nil && c.state == keepwatch.ServerOK && !offsetChanged(c, rep)
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
	if rep.Status && rep.StatusSeq > 0 {
		c.statusSeq = rep.StatusSeq
	}
	if rep.Delayed {
		// Recorded, but not a sign of life.
		if len(applied.Changes) > 0 {
			h.Publish(applied.Changes)
		}
		return applied.State, nil
	}
	if rep.ClockOffset != nil {
		c.clockOffsetMS = rep.ClockOffset.Milliseconds()
	}
	h.seen(c, rep, applied.State)
	if len(applied.Changes) > 0 {
		h.Publish(applied.Changes)
	}
	if slot := newestSlot(rep.Drives); slot > c.judgedSlot && applied.State == keepwatch.ServerOK {
		// The samples are stored: judge the drives on them, once per
		// 5-minute slot (a faster sender adds nothing to judge). The
		// report stands whatever the verdict's fate; the next slot's
		// samples are judged again.
		changes, err := keepwatch.JudgeDrives(ctx, h.Store, rep.ServerID, rep.ReceivedAt)
		if err != nil {
			h.Logger.Warn("judge drives", "server", rep.ServerID, "err", err)
		} else {
			c.judgedSlot = slot
			if len(changes) > 0 {
				h.Publish(changes)
			}
		}
	}
	return applied.State, nil
}

// paceEvents moves the events over the server's events-per-minute cap to
// HeldEvents: recorded, but counted on no incident (the store raises the
// server's flood warning for them). The bucket exists only for servers
// that send events. The caller holds c.mu.
func (h *Handler) paceEvents(c *cred, rep *keepwatch.Report, now time.Time) {
	if len(rep.Events) == 0 {
		return
	}
	if c.events == nil {
		c.events = new(ratelimit.Bucket)
	}
	rate, burst := h.Flood.EventRate()
	for i := range rep.Events {
		if c.events.Allow(now, rate, burst) > 0 {
			// Capped at i: an event keepwatch appends later must not
			// overwrite the first held one.
			rep.Events, rep.HeldEvents = rep.Events[:i:i], rep.Events[i:]
			return
		}
	}
}

// newestSlot is the 5-minute slot (Unix seconds) of a report's latest
// drive sample; 0 without samples.
func newestSlot(rs []keepwatch.DriveReading) int64 {
	var slot int64
	for _, r := range rs {
		slot = max(slot, r.At.Truncate(keepwatch.SeriesRawSlot).Unix())
	}
	return slot
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
		return rep, keepwatch.Errorf(keepwatch.EINVALID, "the report payload: %s", respond.JSONProblem(err))
	}
	if p.Conditions == nil && conditionsNull(pt) {
		// A sender that serializes "no conditions" as null means all
		// clear, but null cannot be told from a missing key: refuse it
		// rather than take an all-clear for a heartbeat.
		return rep, keepwatch.Errorf(keepwatch.EINVALID, `conditions must be an array ([] for all clear), not null; leave the key out for a heartbeat`)
	}
	if !keepwatch.ValidText(p.AgentVersion, 64) {
		return rep, keepwatch.Errorf(keepwatch.EINVALID, "agent_version is too long or not printable")
	}
	rep.AgentVersion, rep.Consent, rep.StatusSeq = p.AgentVersion, p.Consent, p.StatusSeq
	if p.Rotate != nil {
		if len(p.Rotate.PublicKey) != 32 {
			return rep, keepwatch.Errorf(keepwatch.EINVALID, "rotate.public_key must be a 32-byte X25519 public key (base64)")
		}
		rep.RotateKey = p.Rotate.PublicKey
	}
	if p.TransmittedAt != nil {
		rep.TransmittedAt = p.TransmittedAt.UTC()
	}
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
		for i, c := range *p.Conditions {
			if err := validItem(c.Kind, c.Subject, c.Message); err != nil {
				return rep, err
			}
			if keepwatch.SetByKeepwatch(c.Kind) {
				return rep, keepwatch.Errorf(keepwatch.EINVALID, "conditions[%d]: %s is decided by keepwatch, never reported", i, c.Kind)
			}
			cond := keepwatch.Condition{Kind: c.Kind, Subject: c.Subject, Severity: keepwatch.SeverityOf(c.Kind), Message: c.Message}
			if c.Since != nil {
				cond.Since = shift(c.Since.UTC())
			}
			rep.Conditions = append(rep.Conditions, cond)
		}
	}
	if len(p.Drives) > keepwatch.MaxDrives {
		return rep, keepwatch.Errorf(keepwatch.EINVALID, "a report carries at most %d drives", keepwatch.MaxDrives)
	}
	for i, d := range p.Drives {
		if d.Capacity > math.MaxInt64 {
			return rep, keepwatch.Errorf(keepwatch.EINVALID, "drives[%d]: capacity is at most %d bytes", i, int64(math.MaxInt64))
		}
		r := keepwatch.DriveReading{Path: d.Path, Role: keepwatch.DriveRole(d.Role),
			DriveSample: keepwatch.DriveSample{Capacity: d.Capacity, Free: d.Free}}
		switch {
		case d.At != nil:
			r.At = shift(d.At.UTC())
		case p.SentAt != nil:
			r.At = shift(p.SentAt.UTC())
		default:
			r.At = now.UTC()
		}
		if d.OldestRecordingAt != nil {
			r.OldestRecording = shift(d.OldestRecordingAt.UTC())
		}
		if r.Role == "" {
			r.Role = keepwatch.DriveOther
		}
		rep.Drives = append(rep.Drives, r)
	}
	if err := keepwatch.ValidateDriveReadings(rep.Drives, now); err != nil {
		return rep, err
	}
	if len(p.Events) > keepwatch.MaxEvents {
		return rep, keepwatch.Errorf(keepwatch.EINVALID, "a report carries at most %d events", keepwatch.MaxEvents)
	}
	for i, ev := range p.Events {
		if err := validItem(ev.Kind, ev.Subject, ev.Message); err != nil {
			return rep, err
		}
		if keepwatch.SetByKeepwatch(ev.Kind) {
			return rep, keepwatch.Errorf(keepwatch.EINVALID, "events[%d]: %s is decided by keepwatch, never reported", i, ev.Kind)
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

// conditionsNull reports whether a payload has "conditions": null.
func conditionsNull(pt []byte) bool {
	var keys map[string]json.RawMessage
	if json.Unmarshal(pt, &keys) != nil {
		return false
	}
	v, ok := keys["conditions"]
	return ok && string(v) == "null"
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
	RequestReenrollment(ctx context.Context, e keepwatch.Enrollment, remote string) (int64, error)
	SetNextKey(ctx context.Context, serverID string, key []byte) (int64, error)
	PromoteNextKey(ctx context.Context, serverID string) (int64, error)
	ServerRecord(ctx context.Context, id string) (keepwatch.ServerRecord, error)
	ApplyReport(ctx context.Context, r keepwatch.Report) (keepwatch.Applied, error)
	CommitHeartbeats(ctx context.Context, beats []keepwatch.Beat) ([]keepwatch.BeatOutcome, error)
	// The drives a report's samples are judged on (keepwatch.JudgeDrives).
	keepwatch.DriveJudgeStore
}
