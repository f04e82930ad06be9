package notify_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	netmail "net/mail"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"keepwatch"
	"keepwatch/internal/monitor"
	"keepwatch/internal/notify"
	"keepwatch/internal/outbound"
	"keepwatch/internal/protocol"
	"keepwatch/internal/secret"
	"keepwatch/internal/store"
	"keepwatch/internal/testutil"
	"keepwatch/internal/tlsutil"
)

var ctx = context.Background()

const interval = 10 * time.Second

var t0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// site is one integrator with one installation of n servers, a monitor
// and a notifier on an injected clock, and a webhook channel.
type site struct {
	t       *testing.T
	s       *store.Store
	clock   *testutil.Clock
	mon     *monitor.Monitor
	n       *notify.Notifier
	hook    *hookReceiver
	integ   int64
	instID  int64
	slc     string
	servers []protocol.ServerID
	seq     map[protocol.ServerID]uint64
	hookCh  int64
}

func newSite(t *testing.T, dialect string, servers int, minDuration time.Duration) *site {
	t.Helper()
	return newSiteOn(t, testutil.Open(t, dialect), servers, minDuration)
}

// newSiteOn builds the site on a store of the test's own.
func newSiteOn(t *testing.T, s *store.Store, servers int, minDuration time.Duration) *site {
	t.Helper()
	x := &site{t: t, s: s, clock: testutil.NewClock(t0), slc: "SITE-0001", seq: map[protocol.ServerID]uint64{}}
	x.s.Now = x.clock.Now
	in, err := x.s.CreateIntegrator(ctx, "Alice Security")
	must(t, err)
	x.integ = in.ID
	until, _ := keepwatch.ParseDate("2099-01-01")
	x.instID, err = x.s.CreateInstallation(ctx, keepwatch.Installation{SLC: x.slc, Customer: "Harbor Logistics", Product: "XProtect", CarePlusUntil: until}, secret.Hash("k"))
	must(t, err)
	must(t, x.s.Register(ctx, x.integ, x.slc))
	for i := 0; i < servers; i++ {
		id := protocol.NewServerID()
		_, err := x.s.Enroll(ctx, keepwatch.Enrollment{InstallationID: x.instID, ID: id.String(), Name: fmt.Sprintf("RS-%02d", i+1), Key: make([]byte, 32), Interval: interval})
		must(t, err)
		x.servers = append(x.servers, id)
	}
	x.hook = newHookReceiver(t, x.clock)
	ch, err := x.s.CreateChannel(ctx, x.integ, keepwatch.Channel{Name: "ops", Type: keepwatch.ChannelWebhook, Target: x.hook.srv.URL, Secret: x.hook.secret, Enabled: true})
	must(t, err)
	x.hookCh = ch.ID
	_, err = x.s.CreateRule(ctx, x.integ, keepwatch.Rule{Name: "all", ChannelID: ch.ID, MinSeverity: keepwatch.SeverityWarning,
		MinDuration: keepwatch.Duration(minDuration), Enabled: true})
	must(t, err)
	for _, id := range x.servers {
		x.report(id, x.clock.Now(), nil)
	}
	x.start()
	return x
}

// start (re)creates the monitor and notifier, as a keepwatch process
// starting on this database would.
func (x *site) start() {
	x.mon = monitor.New(monitor.Config{Store: x.s, Interval: interval, Now: x.clock.Now, Logger: quiet()})
	must(x.t, x.mon.Load(ctx))
	x.n = notify.New(notify.Config{Store: x.s, Now: x.clock.Now, Logger: quiet(), Interval: interval, PublicURL: "https://keepwatch.example",
		RetryBase: time.Second, MaintenanceEnd: x.s.MaintenanceEnd, HTTP: loopbackClient})
}

// loopbackClient is the guarded outbound client with the test receivers'
// loopback address allowed, as an operator would with --allow-outbound.
var loopbackClient = outbound.MustNew(outbound.Config{Allow: []string{"127.0.0.1/32"}})

// report stores a status report (conds non-nil) or heartbeat as ingest
// does; recorded is the agent's sent_at.
func (x *site) report(id protocol.ServerID, recorded time.Time, conds []string) {
	x.t.Helper()
	x.seq[id]++
	r := keepwatch.Report{ServerID: id.String(), Seq: x.seq[id], ReceivedAt: x.clock.Now(), Interval: interval, RecordedAt: recorded}
	if conds != nil {
		r.Status, r.Conditions = true, []keepwatch.Condition{}
		for _, c := range conds {
			kind, subject, _ := strings.Cut(c, ":")
			r.Conditions = append(r.Conditions, keepwatch.Condition{Kind: kind, Subject: subject, Severity: keepwatch.SeverityOf(kind)})
		}
	}
	app, err := x.s.ApplyReport(ctx, r)
	must(x.t, err)
	if x.mon != nil && app.State == keepwatch.ServerOK {
		x.mon.Seen(id.String(), x.clock.Now())
	}
}

// run lets d of simulated time pass: sweeps every 100 ms, the notifier
// every second, and fn (if any) once per second before them.
func (x *site) run(d time.Duration, fn func(second int)) {
	x.t.Helper()
	for ms := time.Duration(0); ms < d; ms += 100 * time.Millisecond {
		x.clock.Advance(100 * time.Millisecond)
		x.mon.Sweep(ctx)
		if (ms+100*time.Millisecond)%time.Second == 0 {
			if fn != nil {
				fn(int((ms + 100*time.Millisecond) / time.Second))
			}
			must(x.t, x.n.RunOnce(ctx))
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestSiteOutageIsOneNotificationAndOneResolution(t *testing.T) {
	for _, d := range testutil.Dialects {
		t.Run(d, func(t *testing.T) {
			x := newSite(t, d, 50, 0)
			// The site loses its link: nobody reports for two minutes. The
			// agents keep running and spool a heartbeat every interval.
			x.run(2*time.Minute, nil)
			got := x.hook.delivered()
			if len(got) != 1 {
				t.Fatalf("%d notifications for a site outage, want 1: %v", len(got), got)
			}
			inc := got[0]["incident"].(map[string]any)
			if got[0]["type"] != "opened" || inc["kind"] != keepwatch.KindSiteUnreachable || !strings.Contains(got[0]["subject"].(string), "site unreachable") {
				t.Fatalf("notification = %v", got[0])
			}
			// The link comes back; each agent uploads its spool, oldest first.
			back := x.clock.Now()
			for _, id := range x.servers {
				x.report(id, t0.Add(interval), nil)
			}
			x.run(5*time.Second, nil)
			got = x.hook.delivered()
			if len(got) != 2 {
				t.Fatalf("%d notifications after the site came back, want 2", len(got))
			}
			res := got[1]
			rinc := res["incident"].(map[string]any)
			want := fmt.Sprintf("server was running; connection lost from %s to %s", keepwatch.FormatTime(t0), keepwatch.FormatTime(back))
			if res["type"] != "resolved" || rinc["state"] != "resolved" || rinc["annotation"] != want {
				t.Fatalf("resolution = %v\nwant annotation %q", res, want)
			}
			if x.hook.duplicates() != 0 || x.hook.badSig != 0 {
				t.Fatalf("duplicates %d, bad signatures %d", x.hook.duplicates(), x.hook.badSig)
			}
			// Every server outage is recorded, none notified on its own.
			ins, err := x.s.Incidents(ctx, x.integ, keepwatch.IncidentResolved, 100)
			must(t, err)
			if len(ins) != 51 {
				t.Fatalf("%d resolved incidents, want 50 server outages + 1 site", len(ins))
			}
		})
	}
}

func TestRestartAfterOwnOutageNotifiesNobody(t *testing.T) {
	x := newSite(t, store.SQLite, 50, 0)
	// keepwatch is down for ten minutes; it restarts on the same database.
	x.clock.Advance(10 * time.Minute)
	x.start()
	i := 0
	x.run(2*time.Minute, func(second int) {
		// Agents reconnect over the first 25 s, then beat every interval.
		for ; i < len(x.servers) && i < second*2; i++ {
			x.report(x.servers[i], x.clock.Now(), nil)
		}
		if second > 25 && second%10 == 0 {
			for _, id := range x.servers {
				x.report(id, x.clock.Now(), nil)
			}
		}
	})
	if got := x.hook.delivered(); len(got) != 0 {
		t.Fatalf("%d notifications after keepwatch's own outage: %v", len(got), got)
	}
	ins, err := x.s.Incidents(ctx, x.integ, "", 100)
	must(t, err)
	if len(ins) != 0 {
		t.Fatalf("incidents after keepwatch's own outage: %+v", ins)
	}
}

func TestFlappingCameraWithMinimumDurationNotifiesAtMostOnce(t *testing.T) {
	x := newSite(t, store.SQLite, 1, time.Minute)
	id := x.servers[0]
	x.run(5*time.Minute, func(second int) {
		if second%5 == 0 { // the camera goes down and up every 5 s
			conds := []string{}
			if (second/5)%2 == 1 {
				conds = []string{"camera_unreachable:cam-07"}
			}
			x.report(id, x.clock.Now(), conds)
		} else if second%10 == 0 {
			x.report(id, x.clock.Now(), nil)
		}
	})
	x.run(2*time.Minute, func(second int) {
		if second%10 == 0 {
			x.report(id, x.clock.Now(), []string{})
		}
	})
	if got := x.hook.delivered(); len(got) > 1 {
		t.Fatalf("%d notifications for a flapping camera, want at most 1", len(got))
	}
	ins, err := x.s.Incidents(ctx, x.integ, keepwatch.IncidentResolved, 10)
	must(t, err)
	if len(ins) != 1 || ins[0].Count < 25 {
		t.Fatalf("flaps should reopen one incident: %+v", ins)
	}
}

func TestWebhookRetriesUntilDeliveredOnceWithValidSignature(t *testing.T) {
	x := newSite(t, store.SQLite, 1, 0)
	x.hook.failFirst = 3
	x.report(x.servers[0], x.clock.Now(), []string{`storage_full:E:\Recordings`})
	x.run(time.Minute, func(int) { x.report(x.servers[0], x.clock.Now(), nil) })
	got := x.hook.delivered()
	if len(got) != 1 || x.hook.requests != 4 || x.hook.badSig != 0 || x.hook.duplicates() != 0 {
		t.Fatalf("delivered %d after %d requests (bad signatures %d, duplicates %d)", len(got), x.hook.requests, x.hook.badSig, x.hook.duplicates())
	}
	ns, err := x.s.Notifications(ctx, x.integ, 10)
	must(t, err)
	if len(ns) != 1 || ns[0].State != "sent" || ns[0].Attempts != 4 {
		t.Fatalf("outbox = %+v", ns)
	}
	if !strings.Contains(got[0]["url"].(string), "/installations/SITE-0001") {
		t.Fatalf("no link to the installation: %v", got[0])
	}
}

func TestWebhookGivesUpAfterTheLimitAndSaysWhy(t *testing.T) {
	x := newSite(t, store.SQLite, 1, 0)
	x.hook.failFirst = 1000
	x.n = notify.New(notify.Config{Store: x.s, Now: x.clock.Now, Logger: quiet(), Interval: interval, RetryBase: time.Second, MaxAttempts: 3, HTTP: loopbackClient})
	x.report(x.servers[0], x.clock.Now(), []string{"media_db_write_failed"})
	x.run(time.Minute, func(int) { x.report(x.servers[0], x.clock.Now(), nil) })
	ns, err := x.s.Notifications(ctx, x.integ, 10)
	must(t, err)
	if len(ns) != 1 || ns[0].State != "failed" || ns[0].Attempts != 3 || !strings.Contains(ns[0].LastError, "500") {
		t.Fatalf("outbox = %+v", ns)
	}
}

// crashTransport forwards nothing: it ends the delivering goroutine in the
// middle of a delivery, as a killed process would, leaving its lease.
type crashTransport struct{ once sync.Once }

func (c *crashTransport) RoundTrip(*http.Request) (*http.Response, error) {
	runtime.Goexit()
	return nil, nil
}

func TestCrashDuringDeliveryDeliversEveryPendingNotificationOnce(t *testing.T) {
	x := newSite(t, store.SQLite, 5, 0)
	for i, id := range x.servers {
		x.report(id, x.clock.Now(), []string{fmt.Sprintf("camera_unreachable:cam-%d", i)})
	}
	must(t, x.n.Evaluate(ctx))
	crashed := notify.New(notify.Config{Store: x.s, Now: x.clock.Now, Logger: quiet(), Interval: interval,
		HTTP: &http.Client{Transport: &crashTransport{}}})
	done := make(chan struct{})
	go func() {
		defer close(done)
		crashed.Deliver(ctx)
	}()
	<-done
	// A new process starts on the same database; the crashed one's lease
	// runs out and the notification is delivered.
	x.start()
	x.run(3*time.Minute, func(int) {
		for _, id := range x.servers {
			x.report(id, x.clock.Now(), nil)
		}
	})
	got := x.hook.delivered()
	if len(got) != 5 || x.hook.duplicates() != 0 {
		t.Fatalf("delivered %d (duplicates %d), want 5 once each", len(got), x.hook.duplicates())
	}
}

func TestMaintenanceWindowHoldsTheOpeningUntilItEnds(t *testing.T) {
	x := newSite(t, store.SQLite, 1, 0)
	end := x.clock.Now().Add(10 * time.Minute)
	_, err := setMaintenance(ctx, x.s, x.integ, x.slc, x.clock.Now(), end, "disk swap", "user:tech@alice.example")
	must(t, err)
	x.report(x.servers[0], x.clock.Now(), []string{`storage_full:E:\Recordings`})
	beat := func(int) { x.report(x.servers[0], x.clock.Now(), nil) }
	x.run(time.Minute, beat)
	if got := x.hook.delivered(); len(got) != 0 {
		t.Fatalf("notified during maintenance: %v", got)
	}
	ins, err := x.s.Incidents(ctx, x.integ, keepwatch.IncidentOpen, 10)
	must(t, err)
	if len(ins) != 1 || ins[0].Kind != keepwatch.KindStorageFull {
		t.Fatalf("incident not recorded during maintenance: %+v", ins)
	}
	ns, err := x.s.Notifications(ctx, x.integ, 10)
	must(t, err)
	if len(ns) != 1 || ns[0].State != "pending" || !strings.HasPrefix(ns[0].LastError, "maintenance window until") || !ns[0].NotBefore.Equal(end) {
		t.Fatalf("outbox = %+v", ns)
	}
	// The window ends with the disk still full: the opening goes out then.
	x.run(end.Sub(x.clock.Now())-time.Second, beat)
	if got := x.hook.delivered(); len(got) != 0 {
		t.Fatalf("notified before the window ended: %v", got)
	}
	x.run(2*time.Second, beat)
	got := x.hook.delivered()
	if len(got) != 1 || got[0]["type"] != "opened" {
		t.Fatalf("after the window: %v", got)
	}
	if at := sentAt(t, got[0]); at.Before(end) || at.After(end.Add(time.Second)) {
		t.Fatalf("sent at %s, want within a second after the window's end %s", at, end)
	}
}

func TestMaintenanceEndedEarlyReleasesTheOpening(t *testing.T) {
	for _, d := range testutil.Dialects {
		t.Run(d, func(t *testing.T) {
			x := newSite(t, d, 1, 0)
			_, err := setMaintenance(ctx, x.s, x.integ, x.slc, x.clock.Now(), x.clock.Now().Add(time.Hour), "disk swap", "user:tech@alice.example")
			must(t, err)
			x.report(x.servers[0], x.clock.Now(), []string{`storage_full:E:\Recordings`})
			beat := func(int) { x.report(x.servers[0], x.clock.Now(), nil) }
			x.run(30*time.Second, beat)
			if got := x.hook.delivered(); len(got) != 0 {
				t.Fatalf("notified during maintenance: %v", got)
			}
			ended := x.clock.Now()
			_, err = x.s.EndMaintenance(ctx, x.integ, x.slc, ended)
			must(t, err)
			x.run(2*time.Second, beat)
			got := x.hook.delivered()
			if len(got) != 1 || got[0]["type"] != "opened" {
				t.Fatalf("after the window was ended: %v", got)
			}
		})
	}
}

// sentAt reads a webhook body's sent_at (the notifier's clock when it
// sent it).
func sentAt(t *testing.T, body map[string]any) time.Time {
	t.Helper()
	at, err := time.Parse(time.RFC3339Nano, body["sent_at"].(string))
	must(t, err)
	return at
}

func TestEmailIsAMultipartMessageOverSTARTTLSWithAuth(t *testing.T) {
	x := newSite(t, store.SQLite, 1, 0)
	mail := newSMTPServer(t)
	tc, err := tlsutil.ClientConfig(mail.caFile)
	must(t, err)
	tc.ServerName = "127.0.0.1"
	x.n = notify.New(notify.Config{Store: x.s, Now: x.clock.Now, Logger: quiet(), Interval: interval, PublicURL: "https://keepwatch.example",
		SMTP: notify.SMTPConfig{Addr: mail.ln.Addr().String(), Username: mail.user, Password: mail.pass, From: "alerts@keepwatch.example", Security: "starttls", TLSConfig: tc},
		HTTP: loopbackClient})
	must(t, notify.DefaultRouting(ctx, x.s, x.integ, "owner@alice.example"))
	x.report(x.servers[0], x.clock.Now(), []string{"license_exceeded"})
	x.run(90*time.Second, func(int) { x.report(x.servers[0], x.clock.Now(), []string{"license_exceeded"}) })
	// The incident, and (the default channel being a digest channel, past
	// 07:00 UTC) the day's digest.
	subjects := map[string]smtpMessage{}
	for _, msg := range mail.received() {
		parsed, err := netmail.ReadMessage(strings.NewReader(msg.data))
		must(t, err)
		subj, err := new(mime.WordDecoder).DecodeHeader(parsed.Header.Get("Subject"))
		must(t, err)
		subjects[subj] = msg
	}
	m, ok := subjects["[keepwatch] ERROR: Harbor Logistics — license_exceeded on RS-01"]
	_, digest := subjects["[keepwatch] Daily digest: 1 open incidents"]
	if len(subjects) != 2 || !ok || !digest {
		t.Fatalf("mails: %v", subjects)
	}
	for _, want := range []string{"multipart/alternative", "text/plain", "text/html",
		"https://keepwatch.example/installations/SITE-0001", "X-Keepwatch-Delivery:"} {
		if !strings.Contains(m.data, want) {
			t.Errorf("mail lacks %q:\n%s", want, m.data)
		}
	}
	if !m.tls || !m.authed || !strings.Contains(m.to, "owner@alice.example") {
		t.Fatalf("mail tls=%v auth=%v to=%s", m.tls, m.authed, m.to)
	}
}

func TestCarePlusWarningsAt30And7DaysOnce(t *testing.T) {
	x := newSite(t, store.SQLite, 1, 0)
	must(t, x.s.SetCarePlus(ctx, x.slc, keepwatch.DateOf(t0).AddDays(30)))
	x.run(2*time.Minute, func(int) { x.report(x.servers[0], x.clock.Now(), nil) })
	x.clock.Advance(23 * 24 * time.Hour) // 7 days left
	x.start()
	x.run(2*time.Minute, func(int) { x.report(x.servers[0], x.clock.Now(), nil) })
	var kinds []string
	for _, b := range x.hook.delivered() {
		kinds = append(kinds, fmt.Sprint(b["type"], ":", b["days_left"]))
	}
	if strings.Join(kinds, ",") != "care_plus_ending:30,care_plus_ending:7" {
		t.Fatalf("care plus warnings = %v", kinds)
	}
}

func TestRemindersRepeatUntilAcknowledgedAndEscalationRespectsAck(t *testing.T) {
	x := newSite(t, store.SQLite, 1, 0)
	rules, err := x.s.Rules(ctx, x.integ)
	must(t, err)
	must(t, x.s.DeleteRule(ctx, x.integ, rules[0].ID))
	_, err = x.s.CreateRule(ctx, x.integ, keepwatch.Rule{Name: "page", ChannelID: x.hookCh, MinSeverity: keepwatch.SeverityError,
		Repeat: keepwatch.Duration(time.Minute), Enabled: true})
	must(t, err)
	_, err = x.s.CreateRule(ctx, x.integ, keepwatch.Rule{Name: "escalate", ChannelID: x.hookCh, MinSeverity: keepwatch.SeverityError,
		MinDuration: keepwatch.Duration(10 * time.Minute), UnackedOnly: true, Enabled: true})
	must(t, err)
	beat := func(int) { x.report(x.servers[0], x.clock.Now(), nil) }
	x.report(x.servers[0], x.clock.Now(), []string{"media_db_write_failed"})
	x.run(150*time.Second, beat)
	types := func() []string {
		var out []string
		for _, b := range x.hook.delivered() {
			out = append(out, b["type"].(string))
		}
		return out
	}
	if got := strings.Join(types(), ","); got != "opened,reminder,reminder" {
		t.Fatalf("after 2.5 min: %s", got)
	}
	ins, err := x.s.Incidents(ctx, x.integ, keepwatch.IncidentOpen, 10)
	must(t, err)
	_, err = x.s.AckIncident(ctx, x.integ, ins[0].ID, "user:tech@alice.example", "on my way")
	must(t, err)
	x.run(15*time.Minute, beat)
	if got := strings.Join(types(), ","); got != "opened,reminder,reminder" {
		t.Fatalf("after the acknowledgement: %s (no reminder, no escalation expected)", got)
	}
	ns, err := x.s.Notifications(ctx, x.integ, 20)
	must(t, err)
	suppressed := 0
	for _, n := range ns {
		if n.State == "suppressed" && n.LastError == "acknowledged before escalation" {
			suppressed++
		}
	}
	if suppressed != 1 {
		t.Fatalf("escalation not suppressed by the acknowledgement: %+v", ns)
	}
}

func TestEventIncidentResolvesAfterQuietPeriod(t *testing.T) {
	x := newSite(t, store.SQLite, 1, 0)
	x.seq[x.servers[0]]++
	_, err := x.s.ApplyReport(ctx, keepwatch.Report{ServerID: x.servers[0].String(), Seq: x.seq[x.servers[0]], ReceivedAt: x.clock.Now(), Interval: interval,
		Events: []keepwatch.Event{{Kind: "archive_fatal_error", Subject: "Archive 7", Severity: keepwatch.SeverityError, At: x.clock.Now()}}})
	must(t, err)
	n, err := x.s.ResolveQuietEvents(ctx, 24*time.Hour, x.clock.Now().Add(23*time.Hour))
	must(t, err)
	if n != 0 {
		t.Fatal("resolved before the quiet period")
	}
	n, err = x.s.ResolveQuietEvents(ctx, 24*time.Hour, x.clock.Now().Add(25*time.Hour))
	must(t, err)
	ins, err := x.s.Incidents(ctx, x.integ, keepwatch.IncidentResolved, 10)
	must(t, err)
	if n != 1 || len(ins) != 1 || ins[0].ResolvedBy != "keepwatch" || ins[0].ResolveNote != "no recurrence for 24h" {
		t.Fatalf("n=%d incidents %+v", n, ins)
	}
}

// setMaintenance validates and stores a window, as the API and the
// dashboard do.
func setMaintenance(ctx context.Context, s *store.Store, integratorID int64, slc string, start, end time.Time, reason, by string) (keepwatch.MaintenanceWindow, error) {
	now := time.Now()
	if s.Now != nil {
		now = s.Now()
	}
	m, err := keepwatch.NewMaintenance(slc, start, end, reason, by, now)
	if err != nil {
		return m, err
	}
	return s.SetMaintenance(ctx, integratorID, m)
}
