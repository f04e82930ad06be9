package auth

import (
	"context"
	"encoding/hex"
	"strconv"
	"strings"
	"sync"

	"keepwatch"
)

// A long-lived request — an event stream — was authorized once, when it
// opened. StillValid lets it check again, so that signing out, revoking a
// token, removing a user or changing a role ends the streams opened
// before; Changed wakes streams as soon as this node changed a credential.

func sessionCredential(idHash []byte) string { return "session:" + hex.EncodeToString(idHash) }

func tokenCredential(hash []byte) string { return "token:" + hex.EncodeToString(hash) }

// errCredentialEnded is a stream's credential that no longer works.
var errCredentialEnded = keepwatch.Errorf(keepwatch.EUNAUTHORIZED, "your session or token has ended")

// errRoleChanged is a credential that works with other rights than when
// the stream opened: the client reconnects with its new rights.
var errRoleChanged = keepwatch.Errorf(keepwatch.EUNAUTHORIZED, "your role changed; reconnect")

// StillValid checks that the credential p was authenticated with still
// works, for the same integrator and with the same role. It neither
// touches a session nor counts as its use.
func (s *Service) StillValid(ctx context.Context, p keepwatch.Principal) error {
	kind, h, ok := strings.Cut(p.Credential, ":")
	hash, err := hex.DecodeString(h)
	if !ok || err != nil || len(hash) == 0 {
		return errCredentialEnded
	}
	var now keepwatch.Principal
	switch kind {
	case "session":
		ss, err := s.cfg.Store.SessionByHash(ctx, hash, s.cfg.Now().Add(-s.cfg.IdleTimeout))
		if err != nil {
			return ended(err)
		}
		now = ss.Principal()
	case "token":
		if now, err = s.cfg.Store.PrincipalByTokenHash(ctx, hash); err != nil {
			return ended(err)
		}
	default:
		return errCredentialEnded
	}
	if now.IntegratorID != p.IntegratorID || now.Role != p.Role || now.Actor != p.Actor {
		return errRoleChanged
	}
	return nil
}

// ended keeps a database failure distinct from an ended credential: a
// stream survives a database hiccup and checks again.
func ended(err error) error {
	if keepwatch.ErrorCode(err) == keepwatch.EUNAUTHORIZED {
		return errCredentialEnded
	}
	return err
}

// CredentialEnded reports whether a StillValid error means the stream
// must close (rather than a passing database failure).
func CredentialEnded(err error) bool {
	return err != nil && keepwatch.ErrorCode(err) == keepwatch.EUNAUTHORIZED
}

// changes is a broadcast: closed and replaced on every credential change.
type changes struct {
	mu sync.Mutex
	ch chan struct{}
}

func (c *changes) wait() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ch == nil {
		c.ch = make(chan struct{})
	}
	return c.ch
}

func (c *changes) signal() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ch != nil {
		close(c.ch)
		c.ch = nil
	}
}

// Changed returns a channel closed at the next credential change made on
// this node (sign-out, a token revoked, a user removed or given another
// role). Other nodes' changes are found by polling StillValid.
func (s *Service) Changed() <-chan struct{} { return s.changes.wait() }

// CredentialsChanged wakes the streams waiting on Changed.
func (s *Service) CredentialsChanged() { s.changes.signal() }

// DefaultMaxStreams bounds the event streams one user or token holds open
// on one node.
const DefaultMaxStreams = 10

// streams counts open streams per principal.
type streams struct {
	mu   sync.Mutex
	open map[string]int
}

// OpenStream admits one more event stream for p, or refuses it with
// rate_limited when p holds the maximum already. release must be called
// when the stream ends.
func (s *Service) OpenStream(p keepwatch.Principal) (release func(), err error) {
	key := strconv.FormatInt(p.IntegratorID, 10) + "/" + p.Actor
	s.streams.mu.Lock()
	defer s.streams.mu.Unlock()
	if s.streams.open == nil {
		s.streams.open = map[string]int{}
	}
	if s.streams.open[key] >= s.cfg.MaxStreams {
		return nil, keepwatch.Errorf(keepwatch.ERATELIMITED, "at most %d live streams per user or token; close one first", s.cfg.MaxStreams)
	}
	s.streams.open[key]++
	var once sync.Once
	return func() {
		once.Do(func() {
			s.streams.mu.Lock()
			defer s.streams.mu.Unlock()
			if s.streams.open[key]--; s.streams.open[key] <= 0 {
				delete(s.streams.open, key)
			}
		})
	}, nil
}
