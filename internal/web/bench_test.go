package web_test

import (
	"database/sql"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"keepwatch"
	"keepwatch/internal/app"
	"keepwatch/internal/secret"
	"keepwatch/internal/store"
)

// BenchmarkOverview10k measures the whole overview request of an
// integrator with 10,000 installations (10,000 servers, 5 % of them with an
// error): session lookup, the tenant-scoped store reads, status summaries,
// sorting, filtering and template rendering, on SQLite.
func BenchmarkOverview10k(b *testing.B) {
	dir := b.TempDir()
	a, err := app.New(ctx, app.Config{DataDir: dir, InsecureHTTP: true, Logger: quiet()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { a.Store.Close() })
	in, err := a.Store.CreateIntegrator(ctx, "Big Integrator")
	must(b, err)
	uid, err := a.Store.CreateUser(ctx, in.ID, "owner@big.example", "x", keepwatch.RoleOwner)
	must(b, err)
	seedFleet(b, filepath.Join(dir, store.DBFile), in.ID, 10000)
	value := secret.New("")
	must(b, a.Store.CreateSession(ctx, keepwatch.NewSession{IDHash: secret.Hash(value), UserID: uid, IntegratorID: in.ID, CSRF: "c", ExpiresAt: time.Now().Add(time.Hour)}))
	h := a.Handler()
	for _, c := range []struct{ name, path, want string }{
		{"errors", "/", "500 of 10000 installations"},
		{"all", "/?filter=all", "10000 of 10000 installations"},
		{"search", "/?filter=all&q=customer+0042", "of 10000 installations matching"},
	} {
		b.Run(c.name, func(b *testing.B) {
			for i := 0; b.Loop(); i++ {
				req := httptest.NewRequest("GET", c.path, nil)
				req.AddCookie(&http.Cookie{Name: "kw_session", Value: value})
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				if rec.Code != 200 || i == 0 && !strings.Contains(rec.Body.String(), c.want) {
					b.Fatalf("GET %s: %d %.300s", c.path, rec.Code, rec.Body.String())
				}
			}
			b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/page")
		})
	}
}

// seedFleet writes n registered installations with one recording server
// each, one in twenty with a full disk, in one transaction: the store's
// own methods commit each row durably, which would take minutes.
func seedFleet(b *testing.B, path string, integratorID int64, n int) {
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)")
	must(b, err)
	defer db.Close()
	tx, err := db.Begin()
	must(b, err)
	now := time.Now().UnixMilli()
	for i := 1; i <= n; i++ {
		_, err := tx.Exec(`INSERT INTO installations (id, slc, customer, product, cameras, care_plus_until, enrollment_key_hash, integrator_id, registered_at, created_at, rev)
			VALUES (?, ?, ?, 'XProtect Corporate 2016', 32, '2099-01-01', x'00', ?, ?, ?, 1)`, i, fmt.Sprintf("BIG-%05d", i), fmt.Sprintf("Customer %05d", i), integratorID, now, now)
		must(b, err)
		id := fmt.Sprintf("%032x", i)
		_, err = tx.Exec(`INSERT INTO servers (id, installation_id, name, report_key, state, state_since, consent, interval_ms, last_seen, last_seq, agent_version, enrolled_at, rev)
			VALUES (?, ?, 'RS-01', x'00', 'ok', ?, 1, 60000, ?, 1, '1.4.2', ?, 1)`, id, i, now, now-int64(i), now)
		must(b, err)
		if i%20 == 0 {
			_, err = tx.Exec(`INSERT INTO conditions (server_id, kind, subject, severity, since) VALUES (?, 'storage_full', 'E:\Recordings', 'error', ?)`, id, now-int64(i)*1000)
			must(b, err)
		}
	}
	must(b, tx.Commit())
}
