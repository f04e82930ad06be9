package sim

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/hmac"
	"crypto/rand"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"keepwatch"
	"keepwatch/internal/agent"
	"keepwatch/internal/protocol"
	"keepwatch/internal/tlsutil"
)

// requestTimeout bounds one request, as protocol.md advises, so that a
// stalled connection does not hold up a server's later reports.
const requestTimeout = 30 * time.Second

// client posts the reports of the whole fleet over one pool of keep-alive
// TLS connections with session resumption. Real agents each hold their
// own connection; sharing a pool is what lets one process drive tens of
// thousands of servers, and keepwatch cannot tell the difference.
type client struct {
	base string
	http *http.Client
	// beats sends heartbeats as the agent does: by datagram, over HTTPS
	// when no authenticated answer comes.
	beats *agent.Client
}

func newClient(base, caFile string, conns int) (*client, error) {
	tc, err := tlsutil.ClientConfig(caFile)
	if err != nil {
		return nil, err
	}
	tc.ClientSessionCache = tls.NewLRUClientSessionCache(2 * conns)
	tr := &http.Transport{
		TLSClientConfig:     tc,
		MaxConnsPerHost:     conns,
		MaxIdleConnsPerHost: conns,
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: 10 * time.Second,
		Proxy:               http.ProxyFromEnvironment,
	}
	hc := &http.Client{Transport: tr, Timeout: requestTimeout}
	base = strings.TrimRight(base, "/")
	return &client{base: base, http: hc, beats: &agent.Client{BaseURL: base, HTTP: hc}}, nil
}

func (c *client) close() { c.http.CloseIdleConnections() }

// refusal is a request keepwatch (or the network) did not accept. code is
// keepwatch's error code, or "network" when no answer came, or http_NNN
// for an answer that was not keepwatch's (a proxy's error page).
type refusal struct {
	status  int
	code    string
	message string
}

func (r *refusal) Error() string { return fmt.Sprintf("%s: %s", r.code, r.message) }

// Codes for failures that are not keepwatch refusals.
const codeNetwork = "network"

// codeOf returns the refusal code of err.
func codeOf(err error) string {
	var r *refusal
	if errors.As(err, &r) {
		return r.code
	}
	return codeNetwork
}

// retryable reports whether a failed request should be tried again later
// (protocol.md section 9): the network, keepwatch's own faults and rate
// limits, but never a refusal of the report itself.
func retryable(code string) bool {
	switch code {
	case codeNetwork, keepwatch.EINTERNAL, keepwatch.EUNAVAILABLE, keepwatch.ERATELIMITED, keepwatch.ECONFLICT,
		keepwatch.EREENROLLPENDING: // approved moments ago: every node learns it within seconds
		return true
	}
	return strings.HasPrefix(code, "http_5")
}

// report seals payload under the server's key and sequence number and
// posts it; a heartbeat goes as the agent's do (by datagram first).
func (c *client) report(ctx context.Context, id protocol.ServerID, key []byte, seq uint64, payload []byte, heartbeat bool) (protocol.ReportResponse, error) {
	var resp protocol.ReportResponse
	env, err := protocol.Seal(key, id, seq, payload)
	if err != nil {
		return resp, err
	}
	if heartbeat {
		ctx, cancel := context.WithTimeout(ctx, requestTimeout)
		defer cancel()
		resp, err := c.beats.Heartbeat(ctx, key, id, seq, env)
		var se *agent.ServerError
		if errors.As(err, &se) {
			return resp, &refusal{se.Status, se.Code, se.Message}
		}
		if err != nil {
			return resp, &refusal{code: codeNetwork, message: err.Error()}
		}
		return resp, nil
	}
	err = c.post(ctx, protocol.ReportPath, "application/octet-stream", env, http.StatusOK, &resp, &answerCheck{protocol.AuthKey(key), id, seq})
	return resp, err
}

// post sends body and decodes the answer into out; any other status than
// want is a *refusal.
// answerCheck is what authenticates the answer to one envelope.
type answerCheck struct {
	auth []byte
	id   protocol.ServerID
	seq  uint64
}

func (c *client) post(ctx context.Context, path, contentType string, body []byte, want int, out any, ac *answerCheck) error {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("User-Agent", agentVersion)
	r, err := c.http.Do(req)
	if err != nil {
		return &refusal{code: codeNetwork, message: err.Error()}
	}
	defer r.Body.Close()
	b, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	if err != nil {
		return &refusal{code: codeNetwork, message: err.Error()}
	}
	// An enrollment may also be accepted pending the integrator's approval.
	if r.StatusCode != want && !(want == http.StatusCreated && r.StatusCode == http.StatusAccepted) {
		var eb protocol.ErrorBody
		if json.Unmarshal(b, &eb) == nil && eb.Error.Code != "" {
			return &refusal{r.StatusCode, eb.Error.Code, eb.Error.Message}
		}
		return &refusal{r.StatusCode, fmt.Sprintf("http_%d", r.StatusCode), strings.TrimSpace(string(b))}
	}
	if ac != nil && !protocol.CheckAnswer(ac.auth, ac.id, ac.seq, r.StatusCode, b, r.Header.Get(protocol.MACHeader)) {
		// An acceptance without keepwatch's MAC is not keepwatch's.
		return &refusal{r.StatusCode, fmt.Sprintf("http_%d", r.StatusCode), "the answer does not carry keepwatch's MAC"}
	}
	if err := json.Unmarshal(b, out); err != nil {
		return &refusal{r.StatusCode, fmt.Sprintf("http_%d", r.StatusCode), "the answer is not JSON"}
	}
	return nil
}

// enroll enrolls one server (protocol.md section 3): a fresh X25519 key
// pair, the enrollment request MACed under the enrollment key, the
// answer's MAC checked, and the report key derived on both sides. prev,
// when it holds the server's current key, proves it; without that proof a
// known name comes back pending the integrator's approval.
func (c *client) enroll(ctx context.Context, slc, key string, prev Creds) (Creds, time.Duration, bool, error) {
	priv, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return Creds{}, 0, false, err
	}
	pub := priv.PublicKey().Bytes()
	slc = strings.ToUpper(strings.TrimSpace(slc))
	ek := protocol.EnrollMACKey(key)
	req := protocol.EnrollRequest{
		SLC: slc, Name: prev.Name, Consent: true, PublicKey: pub, AgentVersion: agentVersion,
		MAC: protocol.EnrollRequestMAC(ek, slc, prev.Name, pub),
	}
	if id, err := protocol.ParseServerID(prev.ID); err == nil && len(prev.Key) == 32 {
		req.ServerID, req.Proof = prev.ID, protocol.ReenrollProof(protocol.AuthKey(prev.Key), id, pub)
	}
	body, err := json.Marshal(req)
	if err != nil {
		return Creds{}, 0, false, err
	}
	var resp protocol.EnrollResponse
	if err := c.post(ctx, protocol.EnrollPath, "application/json", body, http.StatusCreated, &resp, nil); err != nil {
		return Creds{}, 0, false, err
	}
	id, err := protocol.ParseServerID(resp.ServerID)
	if err != nil {
		return Creds{}, 0, false, fmt.Errorf("enrollment answer: %w", err)
	}
	if !hmac.Equal(resp.MAC, protocol.EnrollAnswerMAC(ek, slc, prev.Name, pub, resp.ServerPublicKey, id, resp.HeartbeatIntervalSeconds, resp.Pending)) {
		return Creds{}, 0, false, &refusal{http.StatusCreated, "http_201", "the enrollment answer is not authenticated"}
	}
	serverPub, err := ecdh.X25519().NewPublicKey(resp.ServerPublicKey)
	if err != nil {
		return Creds{}, 0, false, fmt.Errorf("enrollment answer: %w", err)
	}
	k, err := protocol.DeriveKey(priv, serverPub, pub, resp.ServerPublicKey, id)
	if err != nil {
		return Creds{}, 0, false, err
	}
	return Creds{Name: prev.Name, ID: id.String(), Key: k}, time.Duration(resp.HeartbeatIntervalSeconds) * time.Second, resp.Pending, nil
}
