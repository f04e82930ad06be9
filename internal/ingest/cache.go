package ingest

import (
	"context"
	"sync"

	"keepwatch"
	"keepwatch/internal/protocol"
	"keepwatch/internal/ratelimit"
)

// cred is what ingest keeps in memory of one server to authenticate its
// reports cheaply. mu serializes the reports of that server on this node;
// every field is guarded by it. lastSeq is a hint that refuses an obvious
// replay early: the store's compare-and-set decides.
type cred struct {
	mu             sync.Mutex
	installationID int64
	key            [32]byte // inline: no separate allocation per server
	auth           [32]byte // protocol.AuthKey(key): MACs answers
	// pending is the key of a re-enrollment waiting for approval, with
	// its answer key; hasPending says whether there is one.
	pending, pendingAuth [32]byte
	hasPending           bool
	statusSeq            uint64
	// next is the key of an in-band rotation the agent asked for: its
	// first use replaces key. rotate: keepwatch asks the agent to rotate.
	next            [32]byte
	hasNext, rotate bool
	// keyRev is the server row's revision the keys above were taken from
	// (or written at): a record read before a rotation this node carried
	// out must not bring the old keys back.
	keyRev int64
	// transitMS is the shortest time from a report's transmitted_at to
	// its arrival seen since the last status report: the server's clock
	// offset plus the quickest path. A report far above it was held back.
	transitMS     int64
	transitKnown  bool
	lastSeq       uint64
	state         keepwatch.ServerState
	revoked       bool
	carePlusUntil keepwatch.Date
	clockOffsetMS int64
	// judgedSlot is the latest 5-minute slot of drive samples keepwatch
	// judged this server's drives on (Unix seconds): samples of a slot
	// already judged only replace its point, and are judged with the next.
	judgedSlot int64
	// limit paces this server's reports (a misbehaving agent cannot
	// monopolize ingest).
	limit ratelimit.Bucket
	// events paces its events (the flood cap); nil until it sends one.
	events *ratelimit.Bucket
}

// creds is ingest's cache of server credentials, loaded on first use and
// kept current from the store's changes.
type creds struct {
	store Store
	mu    sync.Mutex
	m     map[protocol.ServerID]*cred
}

func newCreds(s Store) *creds { return &creds{store: s, m: map[protocol.ServerID]*cred{}} }

// lookup returns the credentials of a server, loading them when this node
// has not seen it. An unknown server is unauthorized.
func (c *creds) lookup(ctx context.Context, id protocol.ServerID) (*cred, error) {
	c.mu.Lock()
	cr, ok := c.m[id]
	c.mu.Unlock()
	if ok {
		return cr, nil
	}
	return c.refresh(ctx, id)
}

// cached returns the credentials this node holds of a server, nil if
// none (no store query).
func (c *creds) cached(id protocol.ServerID) *cred {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[id]
}

// refresh reloads one server from the store, as after its enrollment.
func (c *creds) refresh(ctx context.Context, id protocol.ServerID) (*cred, error) {
	r, err := c.store.ServerRecord(ctx, id.String())
	if keepwatch.ErrorCode(err) == keepwatch.ENOTFOUND {
		return nil, errForged
	}
	if err != nil {
		return nil, err
	}
	return c.apply(r), nil
}

// apply merges a stored record: the store's key, state, revocation and
// Care Plus win; the sequence hint only moves forward unless the key
// changed (a new enrollment restarts the numbers).
func (c *creds) apply(r keepwatch.ServerRecord) *cred {
	id, err := protocol.ParseServerID(r.ID)
	if err != nil {
		return nil
	}
	c.mu.Lock()
	cr, ok := c.m[id]
	if !ok {
		cr = &cred{}
		c.m[id] = cr
	}
	c.mu.Unlock()
	cr.mu.Lock()
	defer cr.mu.Unlock()
	cr.fill(r, ok)
	return cr
}

// fill merges a stored record into cr; known says whether cr held the
// server before (a new key then restarts its numbers). cr.mu is held, or
// cr is not shared yet.
func (cr *cred) fill(r keepwatch.ServerRecord, known bool) {
	if !known || r.Rev >= cr.keyRev {
		cr.fillKeys(r, known)
	}
	cr.installationID, cr.state, cr.revoked = r.InstallationID, r.State, r.Revoked
	cr.carePlusUntil, cr.clockOffsetMS = r.CarePlusUntil, r.ClockOffsetMS
	cr.lastSeq = max(cr.lastSeq, r.LastSeq)
}

// fillKeys takes the keys of a record no older than those cr holds.
func (cr *cred) fillKeys(r keepwatch.ServerRecord, known bool) {
	cr.keyRev = r.Rev
	if string(cr.key[:]) != string(r.Key) || cr.auth == ([32]byte{}) {
		if known {
			// A new key restarts the numbers.
			cr.lastSeq, cr.statusSeq = r.LastSeq, r.StatusSeq
		}
		copy(cr.key[:], r.Key)
		copy(cr.auth[:], protocol.AuthKey(r.Key))
	}
	cr.hasPending = len(r.PendingKey) == 32
	if cr.hasPending && string(cr.pending[:]) != string(r.PendingKey) {
		copy(cr.pending[:], r.PendingKey)
		copy(cr.pendingAuth[:], protocol.AuthKey(r.PendingKey))
	}
	cr.statusSeq = max(cr.statusSeq, r.StatusSeq)
	cr.hasNext, cr.rotate = len(r.NextKey) == 32, r.RotateRequired
	if cr.hasNext {
		copy(cr.next[:], r.NextKey)
	}
}

// warm adds a stored record unless the server is already cached: a
// snapshot read at start-up must not undo what a fresher refresh or
// change applied meanwhile.
func (c *creds) warm(r keepwatch.ServerRecord) {
	id, err := protocol.ParseServerID(r.ID)
	if err != nil {
		return
	}
	cr := &cred{}
	cr.fill(r, false)
	c.mu.Lock()
	if _, ok := c.m[id]; !ok {
		c.m[id] = cr
	}
	c.mu.Unlock()
}

// len counts the cached servers.
func (c *creds) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}
