package live

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"sync"
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
// every change published on a node is NOTIFYed, and every node LISTENs and
// hands the changes of the other nodes to its local broker, so a browser
// connected to any node sees what any node ingested.
type Cluster struct {
	Broker *Broker
	Node   string
	URL    string // PostgreSQL URL for the LISTEN connection
	Notify Notifier
	Logger *slog.Logger

	stop chan struct{}
	done sync.WaitGroup
}

type wire struct {
	Node         string           `json:"node"`
	IntegratorID int64            `json:"integrator_id"`
	Change       keepwatch.Change `json:"change"`
}

// NewCluster returns a cluster bridge with a random node id.
func NewCluster(b *Broker, url string, n Notifier, log *slog.Logger) *Cluster {
	id := make([]byte, 6)
	rand.Read(id)
	return &Cluster{Broker: b, Node: hex.EncodeToString(id), URL: url, Notify: n, Logger: log, stop: make(chan struct{})}
}

// Publish delivers c locally and to the other nodes.
func (c *Cluster) Publish(ch keepwatch.Change) {
	c.Broker.Publish(ch)
	if ch.IntegratorID == 0 {
		return
	}
	b, err := json.Marshal(wire{Node: c.Node, IntegratorID: ch.IntegratorID, Change: ch})
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := c.Notify.Notify(ctx, PGChannel, string(b)); err != nil {
		c.Logger.Warn("notify other nodes", "err", err)
	}
}

// Start listens until Stop, reconnecting after failures.
func (c *Cluster) Start() {
	c.done.Add(1)
	go func() {
		defer c.done.Done()
		backoff := time.Second
		for {
			err := c.listen()
			select {
			case <-c.stop:
				return
			case <-time.After(backoff):
			}
			c.Logger.Warn("live updates from other nodes interrupted; reconnecting", "err", err)
			backoff = min(2*backoff, 30*time.Second)
		}
	}()
}

func (c *Cluster) listen() error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-c.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	conn, err := pgx.Connect(ctx, c.URL)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "LISTEN "+PGChannel); err != nil {
		return err
	}
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		var w wire
		if json.Unmarshal([]byte(n.Payload), &w) != nil || w.Node == c.Node {
			continue
		}
		w.Change.IntegratorID = w.IntegratorID
		c.Broker.Publish(w.Change)
	}
}

// Stop ends the listener.
func (c *Cluster) Stop() {
	select {
	case <-c.stop:
	default:
		close(c.stop)
	}
	c.done.Wait()
}
