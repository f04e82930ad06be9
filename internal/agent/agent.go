// Package agent is the recording-server side of keepwatch: enrollment and
// the agent's persistent state, sealed sending, and the daemon that runs
// next to a Recording Server (`keepwatch agent run`): built-in checks of
// drives, media database, cameras and licences, a local API for the VMS,
// and a durable spool so that no report is lost while keepwatch or the
// Internet is away.
package agent

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/hmac"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"keepwatch"
	"keepwatch/internal/fileutil"
	"keepwatch/internal/protocol"
	"keepwatch/internal/tlsutil"
)

// StateFile is the agent's state inside its state directory.
const StateFile = "agent.json"

// State is what an enrolled agent keeps on disk. The file holds the
// per-server key, so it is written 0600.
type State struct {
	Server   string `json:"server"`
	CAFile   string `json:"ca_file,omitempty"`
	SLC      string `json:"slc"`
	Name     string `json:"name"`
	ServerID string `json:"server_id"`
	Key      []byte `json:"key,omitempty"`
	Seq      uint64 `json:"seq"`
	// StatusSeq numbers the status reports a Sender sends (the daemon's
	// spool keeps its own).
	StatusSeq uint64 `json:"status_seq,omitempty"`
	Interval  int64  `json:"heartbeat_interval_seconds"`
	Consent   bool   `json:"consent"`
	// Pending: keepwatch holds this key until the integrator approves
	// the re-enrollment of a known server name (section 10 of
	// docs/protocol.md); reports are answered reenrollment_pending.
	Pending      bool      `json:"pending,omitempty"`
	EnrolledAt   time.Time `json:"enrolled_at"`
	LastAck      time.Time `json:"last_ack,omitzero"`
	LastAckState string    `json:"last_ack_state,omitempty"`
	LastError    string    `json:"last_error,omitempty"`
}

// Load reads the state of dir.
func Load(dir string) (*State, error) {
	b, err := os.ReadFile(filepath.Join(dir, StateFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%s is not enrolled (run keepwatch agent enroll first)", dir)
	}
	if err != nil {
		return nil, err
	}
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("%s: %w", StateFile, err)
	}
	return &s, nil
}

// Save writes the state atomically and durably (temp file, fsync, rename,
// fsync of the directory), so a crash never leaves a torn file or a
// sequence number that goes backwards.
func (s *State) Save(dir string) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return fileutil.WriteAtomic(dir, StateFile, b)
}

// ServerError is a refusal from keepwatch with its code.
type ServerError struct {
	Status  int
	Code    string
	Message string
	// RetryAfter is the wait keepwatch asked for (Retry-After), if any.
	RetryAfter time.Duration
	// Authenticated: the answer carried a valid Keepwatch-MAC under this
	// server's key. An agent acts on a refusal's code (stops, drops a
	// report, renumbers) only when it is authenticated; any other is
	// retried like a network error.
	Authenticated bool
}

func (e *ServerError) Error() string {
	if !e.Authenticated && e.Status != 0 && !strings.HasPrefix(e.Code, "http_") {
		return fmt.Sprintf("keepwatch refused (%s, answer not authenticated): %s", e.Code, e.Message)
	}
	return fmt.Sprintf("keepwatch refused (%s): %s", e.Code, e.Message)
}

// answerKey is what checks keepwatch's answers to one envelope.
type answerKey struct {
	auth []byte
	id   protocol.ServerID
	seq  uint64
}

// Client talks to one keepwatch server.
type Client struct {
	BaseURL string
	HTTP    *http.Client
	// DisableDatagrams sends heartbeats over HTTPS only.
	DisableDatagrams bool
	// DatagramSource is the local address heartbeat datagrams leave from
	// (nil: any).
	DatagramSource *net.UDPAddr
	// DatagramWait is how long one datagram try waits for its answer
	// (zero: DatagramWait).
	DatagramWait time.Duration

	mu            sync.Mutex
	datagramsFrom time.Time // datagrams rest until then after going unanswered
	closeAfter    bool      // close the connection after each request
	holdOpen      bool      // more reports are queued: keep it for them
}

// HoldOpen says whether more reports wait to be sent right after this
// one (a spool draining after an outage): the connection is then kept
// for them, whatever keep-alive keepwatch advised.
func (c *Client) HoldOpen(more bool) {
	c.mu.Lock()
	c.holdOpen = more
	c.mu.Unlock()
}

// NewClient returns a client for base that trusts caFile in addition to
// the system roots. Connections are kept alive and TLS sessions resumed.
func NewClient(base, caFile string) (*Client, error) {
	tc, err := tlsutil.ClientConfig(caFile)
	if err != nil {
		return nil, err
	}
	tr := &http.Transport{
		TLSClientConfig:     tc,
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     90 * time.Second,
		ForceAttemptHTTP2:   true,
		Proxy:               http.ProxyFromEnvironment,
	}
	return &Client{BaseURL: strings.TrimRight(base, "/"), HTTP: &http.Client{Transport: tr, Timeout: 30 * time.Second}}, nil
}

func (c *Client) post(ctx context.Context, path, contentType string, body []byte, out any, ak *answerKey) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.BaseURL+path, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("User-Agent", "keepwatch-agent/"+keepwatch.Version)
	c.mu.Lock()
	// keepwatch advised a keep-alive shorter than this agent's interval:
	// the connection ends with the answer.
	req.Close = c.closeAfter && !c.holdOpen
	c.mu.Unlock()
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return 0, err
	}
	authentic := ak != nil && protocol.CheckAnswer(ak.auth, ak.id, ak.seq, resp.StatusCode, b, resp.Header.Get(protocol.MACHeader))
	if resp.StatusCode >= 300 {
		se := &ServerError{Status: resp.StatusCode, Code: "http_" + fmt.Sprint(resp.StatusCode), Message: strings.TrimSpace(string(b)), Authenticated: authentic}
		var eb protocol.ErrorBody
		if json.Unmarshal(b, &eb) == nil && eb.Error.Code != "" {
			se.Code, se.Message = eb.Error.Code, eb.Error.Message
		}
		if len(se.Message) > 200 {
			se.Message = se.Message[:200] + "…"
		}
		if secs, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && secs > 0 {
			se.RetryAfter = time.Duration(min(secs, 3600)) * time.Second
		}
		return resp.StatusCode, se
	}
	if ak != nil && !authentic {
		// Whatever says "accepted" without the server's MAC is not
		// keepwatch: the report stays in the spool and is sent again.
		return resp.StatusCode, &ServerError{Status: resp.StatusCode, Code: "http_" + fmt.Sprint(resp.StatusCode), Message: "the answer does not carry keepwatch's MAC"}
	}
	if err := json.Unmarshal(b, out); err != nil {
		// A 2xx that is not JSON comes from something in between (a
		// captive portal, a proxy), not from keepwatch.
		return resp.StatusCode, &ServerError{Status: resp.StatusCode, Code: "http_" + fmt.Sprint(resp.StatusCode), Message: "the answer is not keepwatch's JSON"}
	}
	return resp.StatusCode, nil
}

// Report posts one sealed envelope.
// auth is the server's answer key (protocol.AuthKey of its report key):
// an answer without its valid MAC is never taken as keepwatch's.
func (c *Client) Report(ctx context.Context, env []byte, auth []byte) (protocol.ReportResponse, error) {
	var resp protocol.ReportResponse
	h, err := protocol.ParseHeader(env)
	if err != nil {
		return resp, err
	}
	_, err = c.post(ctx, protocol.ReportPath, "application/octet-stream", env, &resp, &answerKey{auth, h.ID, h.Seq})
	if err == nil {
		c.keepAlive(resp)
	}
	return resp, err
}

// EnrollOptions are the inputs of an enrollment.
type EnrollOptions struct {
	Server, CAFile, SLC, Key, Name string
	Consent                        bool
	// Previous is this machine's state before, if any: when it is the
	// same server, the request proves its current report key, so the new
	// key replaces it at once instead of waiting for the integrator.
	Previous *State
}

// Enroll registers this server with keepwatch and returns the new state
// (not yet saved). The report key is derived locally from an X25519
// exchange; it never crosses the network.
func Enroll(ctx context.Context, o EnrollOptions) (*State, error) {
	if !o.Consent {
		return nil, errors.New("the customer must consent to sending status information (--consent)")
	}
	c, err := NewClient(o.Server, o.CAFile)
	if err != nil {
		return nil, err
	}
	st, err := EnrollWith(ctx, c, o)
	if err != nil {
		return nil, err
	}
	if st.CAFile = o.CAFile; st.CAFile != "" {
		if abs, err := filepath.Abs(st.CAFile); err == nil {
			st.CAFile = abs
		}
	}
	return st, nil
}

// EnrollWith enrolls through an existing client (o.Server and o.CAFile
// are not used).
func EnrollWith(ctx context.Context, c *Client, o EnrollOptions) (*State, error) {
	slc, err := keepwatch.NormalizeSLC(o.SLC)
	if err != nil {
		return nil, err
	}
	priv, err := ecdh.X25519().GenerateKey(nil)
	if err != nil {
		return nil, err
	}
	pub := priv.PublicKey().Bytes()
	enrollKey := protocol.EnrollMACKey(o.Key)
	req := protocol.EnrollRequest{
		SLC: slc, Name: o.Name, Consent: o.Consent, PublicKey: pub, AgentVersion: keepwatch.Version,
		MAC: protocol.EnrollRequestMAC(enrollKey, slc, o.Name, pub),
	}
	if p := o.Previous; p != nil && !p.Pending && len(p.Key) == 32 && strings.EqualFold(p.SLC, slc) && p.Name == o.Name {
		if id, err := protocol.ParseServerID(p.ServerID); err == nil {
			req.ServerID, req.Proof = p.ServerID, protocol.ReenrollProof(protocol.AuthKey(p.Key), id, pub)
		}
	}
	body, _ := json.Marshal(req)
	var resp protocol.EnrollResponse
	status, err := c.post(ctx, protocol.EnrollPath, "application/json", body, &resp, nil)
	if err != nil {
		var se *ServerError
		if errors.As(err, &se) && se.Code == keepwatch.EKEYEXPIRED {
			return nil, fmt.Errorf("%s: the enrollment key has expired; ask the integrator or the operator for a new one (%s)", se.Code, se.Message)
		}
		return nil, err
	}
	id, err := protocol.ParseServerID(resp.ServerID)
	if err != nil {
		return nil, fmt.Errorf("enroll answer: %w", err)
	}
	// Only the holder of the enrollment key can MAC the answer: a proxy
	// in the middle of the exchange cannot put in its own public key.
	want := protocol.EnrollAnswerMAC(enrollKey, slc, o.Name, pub, resp.ServerPublicKey, id, resp.HeartbeatIntervalSeconds, resp.Pending)
	if !hmac.Equal(resp.MAC, want) || resp.Pending != (status == http.StatusAccepted) {
		return nil, errors.New("the enrollment answer is not authenticated by the enrollment key: something between this machine and keepwatch altered it; nothing was saved")
	}
	if !protocol.ValidInterval(resp.HeartbeatIntervalSeconds) {
		return nil, fmt.Errorf("enroll answer: heartbeat interval %ds is out of range", resp.HeartbeatIntervalSeconds)
	}
	serverPub, err := ecdh.X25519().NewPublicKey(resp.ServerPublicKey)
	if err != nil {
		return nil, fmt.Errorf("enroll answer: %w", err)
	}
	key, err := protocol.DeriveKey(priv, serverPub, pub, resp.ServerPublicKey, id)
	if err != nil {
		return nil, err
	}
	return &State{
		Server: c.BaseURL, SLC: slc, Name: o.Name, ServerID: resp.ServerID, Key: key,
		Interval: resp.HeartbeatIntervalSeconds, Consent: true, Pending: resp.Pending, EnrolledAt: time.Now().UTC(),
	}, nil
}

// Sender sends reports for one enrolled agent directly, without a spool,
// persisting the sequence number before each send so it never repeats. It
// serves simulated agents and tests (Dir == "": state in memory only). A
// state directory used by `keepwatch agent run` must go through its spool
// instead (OpenLocal, or the daemon's local API), which owns the sequence
// numbers there.
type Sender struct {
	Dir    string // "" keeps the state in memory only (simulated agents)
	State  *State
	Client *Client
}

// Send seals payload (nil for a heartbeat) and posts it. A status report
// keepwatch missed is not resent by itself: the answer's Refresh says to
// send the full state.
func (s *Sender) Send(ctx context.Context, p *protocol.Payload) (protocol.ReportResponse, error) {
	var resp protocol.ReportResponse
	id, err := protocol.ParseServerID(s.State.ServerID)
	if err != nil {
		return resp, err
	}
	// Every report, a heartbeat too, says when it was sent (keepwatch
	// learns this machine's clock offset and notices a report held back
	// on the way) and numbers status reports in their own counter.
	var q protocol.Payload
	if p != nil {
		q = *p
	}
	if q.TransmittedAt == nil {
		now := time.Now().UTC()
		q.TransmittedAt = &now
	}
	if q.Conditions != nil {
		s.State.StatusSeq++
	}
	if q.StatusSeq == 0 {
		q.StatusSeq = s.State.StatusSeq
	}
	pt, err := json.Marshal(&q)
	if err != nil {
		return resp, err
	}
	s.State.Seq++
	if err := s.save(); err != nil {
		return resp, err
	}
	env, err := protocol.Seal(s.State.Key, id, s.State.Seq, pt)
	if err != nil {
		return resp, err
	}
	if isHeartbeat(p) {
		resp, err = s.Client.Heartbeat(ctx, s.State.Key, id, s.State.Seq, env)
	} else {
		resp, err = s.Client.Report(ctx, env, protocol.AuthKey(s.State.Key))
	}
	if err != nil {
		s.State.LastError = err.Error()
	} else {
		s.State.LastError, s.State.Pending = "", false
		s.State.LastAck, s.State.LastAckState = time.Now().UTC(), resp.State
		if protocol.ValidInterval(resp.HeartbeatIntervalSeconds) {
			s.State.Interval = resp.HeartbeatIntervalSeconds
		}
	}
	if serr := s.save(); serr != nil && err == nil {
		err = serr
	}
	return resp, err
}

// isHeartbeat reports whether a payload is a heartbeat: no conditions,
// events or consent change (drive measurements may ride along).
func isHeartbeat(p *protocol.Payload) bool {
	return p == nil || p.Conditions == nil && len(p.Events) == 0 && p.Consent == nil
}

func (s *Sender) save() error {
	if s.Dir == "" {
		return nil
	}
	return s.State.Save(s.Dir)
}

// StatusPayload builds a status report whose active conditions are
// exactly conds (KIND or KIND:SUBJECT), plus events.
func StatusPayload(conds, events []string, now time.Time) (*protocol.Payload, error) {
	list := []protocol.PayloadCondition{}
	for _, c := range conds {
		kind, subject, _ := strings.Cut(c, ":")
		if !keepwatch.ValidKind(kind) {
			return nil, fmt.Errorf("condition %q: kind must be lower-case letters, digits and _", c)
		}
		list = append(list, protocol.PayloadCondition{Kind: kind, Subject: subject})
	}
	p := &protocol.Payload{SentAt: &now, AgentVersion: keepwatch.Version, Conditions: &list}
	for _, e := range events {
		kind, subject, _ := strings.Cut(e, ":")
		if !keepwatch.ValidKind(kind) {
			return nil, fmt.Errorf("event %q: kind must be lower-case letters, digits and _", e)
		}
		p.Events = append(p.Events, protocol.PayloadEvent{Kind: kind, Subject: subject, At: now})
	}
	return p, nil
}
