package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"keepwatch"
	"keepwatch/internal/protocol"
)

// result is what one delivery attempt of the spool's head came to, and so
// what the sender does next.
type result int

const (
	resDelivered  result = iota // acknowledged (or an earlier attempt was): next report
	resRenumbered               // our counter was behind keepwatch's: send again at once
	resAgain                    // send again at once (now granting consent)
	resRefused                  // refused as malformed and dropped: next report
	resRetry                    // network, 5xx, 429: back off and send again
	resPaused                   // care_plus_inactive, consent_required: retry slowly
	resStopped                  // unauthorized: only a new enrollment helps
)

// courier delivers spooled reports in sequence order, one at a time: a
// later report must never overtake an earlier one, or the earlier would be
// refused as replayed.
type courier struct {
	spool  *Spool
	client *Client
	id     protocol.ServerID
	key    []byte
	auth   []byte // protocol.AuthKey(key): checks keepwatch's answers
	now    func() time.Time
	// grant adds "consent": true to every report until one is accepted:
	// keepwatch still holds a withdrawal this agent has since revoked.
	grant      bool
	renumbered int // consecutive renumberings, to widen the step
}

func newCourier(sp *Spool, c *Client, st *State, now func() time.Time) (*courier, error) {
	id, err := protocol.ParseServerID(st.ServerID)
	if err != nil {
		return nil, fmt.Errorf("agent.json: %w", err)
	}
	if len(st.Key) != 32 {
		return nil, errors.New("agent.json holds no report key; enroll again")
	}
	return &courier{spool: sp, client: c, id: id, key: st.Key, auth: protocol.AuthKey(st.Key), now: now}, nil
}

// attempt sends e, just claimed from the spool, once and settles the
// spool according to the answer. consent is the customer's current choice
// on this machine.
func (c *courier) attempt(ctx context.Context, e Entry, consent bool) (result, protocol.ReportResponse, error) {
	var resp protocol.ReportResponse
	n, err := c.spool.StatusNumber(e.Seq, isStatus(e.Payload))
	if err != nil {
		return resRetry, resp, err
	}
	payload := prepare(e.Payload, c.grant && consent && e.Kind != KindConsent, c.now(), n)
	env, err := protocol.Seal(c.key, c.id, e.Seq, payload)
	if err != nil {
		return resRetry, resp, err
	}
	if st, err := c.spool.Stats(); err == nil {
		c.client.HoldOpen(st.Depth > 1)
	}
	if e.Kind == KindHeartbeat && !c.grant {
		resp, err = c.client.Heartbeat(ctx, c.key, c.id, e.Seq, env)
	} else {
		resp, err = c.client.Report(ctx, env, c.auth)
	}
	now := c.now()
	if err == nil {
		c.grant, c.renumbered = false, 0
		return resDelivered, resp, c.spool.Delivered(e.Seq, now, resp.State)
	}
	if ctx.Err() != nil {
		return resRetry, resp, ctx.Err()
	}
	var se *ServerError
	if !errors.As(err, &se) {
		c.note(fmt.Sprintf("keepwatch unreachable: %v", err), now)
		return resRetry, resp, err
	}
	if !se.Authenticated {
		// Not keepwatch's word (a proxy, a forgery, or a refusal before
		// keepwatch knew the key): never stop, drop or renumber on it;
		// send the same report again after a backoff.
		c.note(se.Error(), now)
		return resRetry, resp, se
	}
	switch se.Code {
	case keepwatch.EREENROLLPENDING:
		c.note("the new enrollment waits for the integrator's approval on the dashboard; reports are kept until then", now)
		return resPaused, resp, se
	case keepwatch.EREPLAYED:
		if e.Attempts > 0 {
			// An earlier attempt got through and only its answer was
			// lost: the report is delivered, sending it again would
			// duplicate its events.
			return resDelivered, resp, c.spool.Delivered(e.Seq, now, "")
		}
		// Never sent, yet keepwatch has seen the number: the counter
		// went backwards (state restored from a backup). Move past it.
		step := uint64(1_000_000) << min(c.renumbered, 20)
		c.renumbered++
		if err := c.spool.Renumber(step); err != nil {
			return resRetry, resp, err
		}
		c.note(fmt.Sprintf("sequence numbers moved forward by %d: keepwatch had seen higher ones", step), now)
		return resRenumbered, resp, se
	case keepwatch.EINVALID, keepwatch.ETOOLARGE:
		if err := c.spool.Refused(e.Seq); err != nil {
			return resRetry, resp, err
		}
		c.note(fmt.Sprintf("report #%d was dropped: %v", e.Seq, se), now)
		return resRefused, resp, se
	case keepwatch.EUNAUTHORIZED:
		c.note(fmt.Sprintf("%v (the server was revoked or enrolled again elsewhere: enroll it again)", se), now)
		return resStopped, resp, se
	case keepwatch.ECAREPLUSINACTIVE:
		c.note(fmt.Sprintf("monitoring paused: %v", se), now)
		return resPaused, resp, se
	case keepwatch.ECONSENTREQUIRED:
		if consent && !c.grant {
			// keepwatch still holds an old withdrawal; the customer
			// consents now, so say so and send again at once.
			c.grant = true
			return resAgain, resp, se
		}
		c.note(fmt.Sprintf("monitoring paused: %v", se), now)
		return resPaused, resp, se
	}
	c.note(se.Error(), now)
	return resRetry, resp, se
}

func (c *courier) note(msg string, at time.Time) { c.spool.SetError(msg, at) }

// prepare stamps a spooled payload for this attempt: transmitted_at, the
// clock now (sent_at stays the time it was recorded), from which keepwatch
// learns this machine's clock offset; and, with grant, "consent": true.
// statusSeq is the report's status number (StatusNumber).
func prepare(payload []byte, grant bool, now time.Time, statusSeq uint64) []byte {
	var p protocol.Payload
	if len(payload) > 0 && json.Unmarshal(payload, &p) != nil {
		return payload
	}
	now = now.UTC()
	p.TransmittedAt = &now
	p.StatusSeq = statusSeq
	if grant && p.Consent == nil {
		on := true
		p.Consent = &on
	}
	b, err := json.Marshal(&p)
	if err != nil {
		return payload
	}
	return b
}

// isStatus reports whether a spooled payload is a status report (it
// carries "conditions").
func isStatus(payload []byte) bool {
	var p struct {
		Conditions json.RawMessage `json:"conditions"`
	}
	return len(payload) > 0 && json.Unmarshal(payload, &p) == nil && p.Conditions != nil && string(p.Conditions) != "null"
}

// backoff is the wait before retry n (1-based): 1 s doubling up to max,
// ±20 % jitter so that servers cut off together do not return in
// lockstep, and never less than keepwatch asked for.
func backoff(n int, max time.Duration, err error) time.Duration {
	d := time.Second
	for i := 1; i < n && d < max; i++ {
		d *= 2
	}
	d = min(d, max)
	d = time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
	var se *ServerError
	if errors.As(err, &se) && se.RetryAfter > d {
		d = se.RetryAfter
	}
	return d
}

// flush delivers everything spooled, in order, and stops at the first
// report that cannot be delivered now. It serves one-shot commands; the
// daemon has its own loop with backoff. It returns keepwatch's answer to
// report want, or why want was not delivered.
func (c *courier) flush(ctx context.Context, consent bool, want uint64) (protocol.ReportResponse, error) {
	var got protocol.ReportResponse
	var wantErr error
	for {
		e, ok, err := c.spool.Claim()
		if err != nil {
			return got, err
		}
		if !ok {
			if got.Seq == 0 && wantErr == nil {
				wantErr = errors.New("the report is no longer in the spool")
			}
			return got, wantErr
		}
		if !consent && e.Kind != KindConsent {
			return got, keepwatch.Errorf(keepwatch.ECONSENTREQUIRED, "consent is off for this agent; nothing is sent (keepwatch agent consent on)")
		}
		res, resp, err := c.attempt(ctx, e, consent)
		switch res {
		case resDelivered:
			if err != nil {
				return got, err
			}
			if e.Seq == want {
				got = resp
				if resp.Seq == 0 {
					got.Seq = e.Seq // delivered earlier; its answer was lost
				}
			}
		case resRenumbered:
			if c.renumbered > 5 {
				return got, err
			}
			// Every pending report moved by the same step; follow ours.
			if h, ok, _ := c.spool.Head(); ok && want >= e.Seq {
				want += h.Seq - e.Seq
			}
		case resAgain:
		case resRefused:
			if e.Seq == want {
				wantErr = err
			}
		default:
			return got, err
		}
	}
}
