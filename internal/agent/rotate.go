package agent

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"encoding/json"
	"errors"
	"fmt"

	"keepwatch/internal/protocol"
)

// rotation is an in-band rotation of the report key in progress: the
// agent sends a new X25519 public key in a report sealed under the current
// key, keepwatch answers (MACed under the current key) with its own, and
// both derive the next key as at enrollment. keepwatch switches to it at
// the first envelope sealed under it; the old key is refused from then on.
type rotation struct {
	priv *ecdh.PrivateKey
	pub  []byte
}

func newRotation() (*rotation, error) {
	priv, err := ecdh.X25519().GenerateKey(nil)
	if err != nil {
		return nil, err
	}
	return &rotation{priv: priv, pub: priv.PublicKey().Bytes()}, nil
}

// payload is the report that asks for the rotation.
func (r *rotation) payload() *protocol.Payload {
	return &protocol.Payload{Rotate: &protocol.PayloadRotate{PublicKey: r.pub}}
}

// asked reports whether a spooled payload is this rotation's request.
func (r *rotation) asked(payload []byte) bool {
	var p protocol.Payload
	return json.Unmarshal(payload, &p) == nil && p.Rotate != nil && bytes.Equal(p.Rotate.PublicKey, r.pub)
}

// key derives the next report key from keepwatch's answer.
func (r *rotation) key(serverID string, serverPub []byte) ([]byte, error) {
	id, err := protocol.ParseServerID(serverID)
	if err != nil {
		return nil, err
	}
	peer, err := ecdh.X25519().NewPublicKey(serverPub)
	if err != nil {
		return nil, fmt.Errorf("rotation answer: %w", err)
	}
	return protocol.DeriveKey(r.priv, peer, r.pub, serverPub, id)
}

// switchKey makes key the courier's and the state's report key.
func (c *courier) switchKey(key []byte) {
	c.key, c.auth = key, protocol.AuthKey(key)
}

// Rotate rotates the report key in-band (`keepwatch agent rotate`): it
// delivers what the spool holds, asks keepwatch for a new key, and saves
// it. Until keepwatch sees the new key in use the old one still works, so
// an interrupted rotation can simply be run again.
func (l *Local) Rotate(ctx context.Context) error {
	rot, err := newRotation()
	if err != nil {
		return err
	}
	_, resp, err := l.Send(ctx, rot.payload())
	if err != nil {
		return err
	}
	if len(resp.ServerPublicKey) == 0 {
		return errors.New("keepwatch did not confirm the rotation (its answer was lost); the old key still works: run agent rotate again")
	}
	key, err := rot.key(l.State.ServerID, resp.ServerPublicKey)
	if err != nil {
		return err
	}
	l.State.Key = key
	if err := l.saveState(); err != nil {
		return err
	}
	if l.c != nil {
		l.c.switchKey(key)
	}
	// The first report under the new key completes the switch at
	// keepwatch; if it cannot go now, it stays spooled for the daemon.
	l.Send(ctx, nil)
	return nil
}

// rotateIfAsked carries an in-band rotation forward after a delivery:
// keepwatch's answer to this agent's rotation request switches it to the
// new key; keepwatch asking for a rotation (rotate_key) starts one. Only
// the sender goroutine calls it.
func (d *Daemon) rotateIfAsked(e Entry, resp protocol.ReportResponse) {
	if d.rot != nil && d.rot.asked(e.Payload) {
		rot := d.rot
		d.rot = nil
		if len(resp.ServerPublicKey) == 0 {
			return // the answer was lost: keepwatch asks again
		}
		d.mu.Lock()
		key, err := rot.key(d.state.ServerID, resp.ServerPublicKey)
		if err == nil {
			old := d.state.Key
			d.state.Key = key
			if err = d.saveStateLocked(); err != nil {
				d.state.Key = old
			}
		}
		d.mu.Unlock()
		if err != nil {
			d.Logger.Error("report key rotation", "err", err)
			return
		}
		d.courier.switchKey(key)
		d.Logger.Info("report key rotated")
		return
	}
	if !resp.RotateKey || d.rot != nil {
		return
	}
	rot, err := newRotation()
	if err != nil {
		d.Logger.Error("report key rotation", "err", err)
		return
	}
	d.mu.Lock()
	now := d.Now().UTC()
	p := rot.payload()
	p.SentAt = &now
	_, err = d.spool.Record(KindHeartbeat, now, p)
	d.mu.Unlock()
	if err != nil {
		d.Logger.Error("record the rotation request", "err", err)
		return
	}
	d.rot = rot
	d.Logger.Info("keepwatch asks for a new report key; rotating")
	poke(d.wake)
}
