package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"keepwatch"
	"keepwatch/internal/sealed"
)

// Report keys (servers.report_key) and webhook secrets (channels.secret)
// are sealed with the store's keyring before they are written, bound to
// their row and column. Values written before a keyring was configured
// are plaintext and still read; RotateSecrets seals them.

func reportKeyAD(serverID string) string { return "servers.report_key:" + serverID }

func channelSecretAD(channelID int64) string {
	return "channels.secret:" + strconv.FormatInt(channelID, 10)
}

// errNoKeyring is reading a sealed value without the key.
var errNoKeyring = errors.New("secrets in this database are sealed: configure the secret key (--secret-key-file or KEEPWATCH_SECRET_KEY)")

func (s *Store) sealReportKey(serverID string, key []byte) []byte {
	if s.keys == nil {
		return key
	}
	return s.keys.Seal(key, reportKeyAD(serverID))
}

func (s *Store) openReportKey(serverID string, stored []byte) ([]byte, error) {
	if !sealed.IsSealed(stored) {
		return stored, nil
	}
	if s.keys == nil {
		return nil, errNoKeyring
	}
	return s.keys.Open(stored, reportKeyAD(serverID))
}

func (s *Store) sealSecret(channelID int64, secret string) string {
	if s.keys == nil || secret == "" {
		return secret
	}
	return s.keys.SealString(secret, channelSecretAD(channelID))
}

func (s *Store) openSecret(channelID int64, stored string) (string, error) {
	if !sealed.IsSealedString(stored) {
		return stored, nil
	}
	if s.keys == nil {
		return "", errNoKeyring
	}
	return s.keys.OpenString(stored, channelSecretAD(channelID))
}

// Resealed counts what RotateSecrets re-sealed.
type Resealed struct {
	ReportKeys, WebhookSecrets int
}

// RotateSecrets seals every report key and webhook secret under the
// keyring's current key: plaintext values and values sealed under an
// older key. Each row is rewritten with a compare-and-set on its old
// value, so a server enrolling meanwhile keeps its new key. Running
// servers need no restart: the plaintext does not change.
func (s *Store) RotateSecrets(ctx context.Context) (Resealed, error) {
	var n Resealed
	if s.keys == nil {
		return n, keepwatch.Errorf(keepwatch.EINVALID, "no secret key configured")
	}
	const batch = 1000
	after := ""
	for {
		type row struct {
			id  string
			key []byte
		}
		var rows []row
		rs, err := s.query(ctx, `SELECT id, report_key FROM servers WHERE id > ? ORDER BY id LIMIT ?`, after, batch)
		if err != nil {
			return n, err
		}
		for rs.Next() {
			var r row
			if err := rs.Scan(&r.id, &r.key); err != nil {
				rs.Close()
				return n, dbErr(err)
			}
			rows = append(rows, r)
		}
		if err := rs.Close(); err != nil {
			return n, dbErr(err)
		}
		if len(rows) == 0 {
			break
		}
		after = rows[len(rows)-1].id
		err = s.tx(ctx, func(t *Tx) error {
			for _, r := range rows {
				if s.keys.Current(r.key) {
					continue
				}
				plain, err := s.openReportKey(r.id, r.key)
				if err != nil {
					return fmt.Errorf("server %s: %w", r.id, err)
				}
				res, err := t.exec(`UPDATE servers SET report_key = ? WHERE id = ? AND report_key = ?`, s.sealReportKey(r.id, plain), r.id, r.key)
				if err != nil {
					return err
				}
				if c, _ := res.RowsAffected(); c > 0 {
					n.ReportKeys++
				}
			}
			return nil
		})
		if err != nil {
			return n, err
		}
	}
	rs, err := s.query(ctx, `SELECT id, secret FROM channels WHERE secret <> '' ORDER BY id`)
	if err != nil {
		return n, err
	}
	type chRow struct {
		id     int64
		secret string
	}
	var chs []chRow
	for rs.Next() {
		var r chRow
		if err := rs.Scan(&r.id, &r.secret); err != nil {
			rs.Close()
			return n, dbErr(err)
		}
		chs = append(chs, r)
	}
	if err := rs.Close(); err != nil {
		return n, dbErr(err)
	}
	err = s.tx(ctx, func(t *Tx) error {
		for _, r := range chs {
			if s.keys.CurrentString(r.secret) {
				continue
			}
			plain, err := s.openSecret(r.id, r.secret)
			if err != nil {
				return fmt.Errorf("channel %d: %w", r.id, err)
			}
			res, err := t.exec(`UPDATE channels SET secret = ? WHERE id = ? AND secret = ?`, s.sealSecret(r.id, plain), r.id, r.secret)
			if err != nil {
				return err
			}
			if c, _ := res.RowsAffected(); c > 0 {
				n.WebhookSecrets++
			}
		}
		return nil
	})
	return n, err
}

// StoredSecrets returns a server's report key and a channel's secret as
// stored, sealed or not (operator-level, for tests of encryption at rest).
func (s *Store) StoredSecrets(ctx context.Context, serverID string, channelID int64) (reportKey []byte, secret string, err error) {
	if serverID != "" {
		if err := s.queryRow(ctx, `SELECT report_key FROM servers WHERE id = ?`, serverID).Scan(&reportKey); err != nil {
			return nil, "", dbErr(err)
		}
	}
	if channelID != 0 {
		if err := s.queryRow(ctx, `SELECT secret FROM channels WHERE id = ?`, channelID).Scan(&secret); err != nil {
			return nil, "", dbErr(err)
		}
	}
	return reportKey, secret, nil
}
