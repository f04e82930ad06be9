package live

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"

	"keepwatch"
)

// PGChannel is the PostgreSQL NOTIFY channel that carries changes between
// keepwatch nodes.
const PGChannel = "keepwatch_changes"

// Notifier sends a payload on a NOTIFY channel (the store's pool).
type Notifier interface {
	Notify(ctx context.Context, channel, payload string) error
}

// Cluster fans changes out across keepwatch nodes sharing one PostgreSQL:
// the changes published on a node are NOTIFYed in batches (one NOTIFY per
// flush, never one round trip per change), and every node LISTENs and
// hands the changes of the other nodes to its local broker, so a browser
// connected to any node sees what any node ingested.
type Cluster struct {
	Broker *Broker
	Node   string
	URL    string // PostgreSQL URL for the LISTEN connection
	Notify Notifier
	Logger *slog.Logger
	// FlushEvery bounds how long a change waits to be sent (default 50 ms).
	FlushEvery time.Duration

	out chan keepwatch.Change
}

type wire struct {
	Node    string             `json:"node"`
	Changes []keepwatch.Change `json:"changes"`
	// Integrators holds each change's integrator (Change does not marshal
	// it).
	Integrators []int64 `json:"integrators"`
}

// maxPayload keeps one NOTIFY under PostgreSQL's 8000-byte limit.
const maxPayload = 7000

// NewCluster returns a cluster bridge with a random node id.
func NewCluster(b *Broker, url string, n Notifier, log *slog.Logger) *Cluster {
	id := make([]byte, 6)
	rand.Read(id)
	return &Cluster{Broker: b, Node: hex.EncodeToString(id), URL: url, Notify: n, Logger: log,
		FlushEvery: 50 * time.Millisecond, out: make(chan keepwatch.Change, 65536)}
}

// Publish delivers changes locally at once and queues them for the other
// nodes. A full queue drops changes for other nodes rather than slow
// ingest down: their dashboards reload the state when they reconnect.
func (c *Cluster) Publish(changes []keepwatch.Change) {
	for _, ch := range changes {
		c.Broker.Publish(ch)
		if ch.IntegratorID == 0 {
			continue
		}
		select {
		case c.out <- ch:
		default:
			c.Logger.Warn("live updates to other nodes dropped: queue full")
		}
	}
}

// Run listens for the other nodes' changes and sends this node's, until
// ctx ends.
func (c *Cluster) Run(ctx context.Context) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.send(ctx)
	}()
	backoff := time.Second
	for {
		err := c.listen(ctx)
		select {
		case <-ctx.Done():
			<-done
			return
		case <-time.After(backoff):
		}
		c.Logger.Warn("live updates from other nodes interrupted; reconnecting", "err", err)
		backoff = min(2*backoff, 30*time.Second)
	}
}

// send batches queued changes into as few NOTIFYs as fit.
func (c *Cluster) send(ctx context.Context) {
	t := time.NewTicker(c.FlushEvery)
	defer t.Stop()
	var batch []keepwatch.Change
	for {
		select {
		case <-ctx.Done():
			return
		case ch := <-c.out:
			batch = append(batch, ch)
			continue
		case <-t.C:
		}
		for len(batch) > 0 {
			w := wire{Node: c.Node}
			size := 0
			n := 0
			for _, ch := range batch {
				b, _ := json.Marshal(ch)
				if size+len(b) > maxPayload && n > 0 {
					break
				}
				size += len(b) + 10
				w.Changes, w.Integrators = append(w.Changes, ch), append(w.Integrators, ch.IntegratorID)
				n++
			}
			batch = batch[n:]
			b, err := json.Marshal(w)
			if err != nil {
				continue
			}
			nctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			if err := c.Notify.Notify(nctx, PGChannel, string(b)); err != nil && ctx.Err() == nil {
				c.Logger.Warn("notify other nodes", "err", err)
			}
			cancel()
		}
		batch = batch[:0]
	}
}

func (c *Cluster) listen(ctx context.Context) error {
	conn, err := pgx.Connect(ctx, c.URL)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+PGChannel); err != nil {
		return err
	}
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		var w wire
		if json.Unmarshal([]byte(n.Payload), &w) != nil || w.Node == c.Node || len(w.Integrators) != len(w.Changes) {
			continue
		}
		for i, ch := range w.Changes {
			ch.IntegratorID = w.Integrators[i]
			c.Broker.Publish(ch)
		}
	}
}
