package agent

import (
	"fmt"
	"mime"
	"net"
	"net/http"
	"strings"
	"time"

	"keepwatch"
	"keepwatch/internal/protocol"
	"keepwatch/internal/respond"
)

// maxLocalBody bounds a local API request. It keeps every report the API
// records well under the 1 MiB envelope limit.
const maxLocalBody = 512 << 10

// Request bodies of the local API.
type (
	eventsRequest struct {
		Events []protocol.PayloadEvent `json:"events"`
	}
	conditionsRequest struct {
		Conditions *[]protocol.PayloadCondition `json:"conditions"`
		Events     []protocol.PayloadEvent      `json:"events,omitempty"`
		Force      bool                         `json:"force,omitempty"`
	}
	consentRequest struct {
		Consent *bool `json:"consent"`
	}
)

// localAPI is the VMS's way in: events, the state conditions it knows,
// consent, and the daemon's status. It listens on loopback only and has
// no authentication of its own, so it refuses what a web page in a
// browser on this machine could send: requests naming another host (DNS
// rebinding), cross-origin requests, and bodies that are not
// application/json (which a page cannot send without CORS, which this API
// never grants).
func (d *Daemon) localAPI() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", d.apiStatus)
	mux.HandleFunc("POST /v1/events", d.apiEvents)
	mux.HandleFunc("PUT /v1/conditions", d.apiConditions)
	mux.HandleFunc("POST /v1/heartbeat", d.apiHeartbeat)
	mux.HandleFunc("PUT /v1/consent", d.apiConsent)
	for _, p := range []string{"/v1/status", "/v1/events", "/v1/conditions", "/v1/heartbeat", "/v1/consent"} {
		mux.HandleFunc(p, func(w http.ResponseWriter, r *http.Request) {
			d.fail(w, r, keepwatch.Errorf(keepwatch.EINVALID, "method %s is not allowed on %s", r.Method, r.URL.Path))
		})
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		d.fail(w, r, keepwatch.Errorf(keepwatch.ENOTFOUND, "no such endpoint; see docs/agent.md"))
	})
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d.fail(w, r, keepwatch.Errorf(keepwatch.EFORBIDDEN, "cross-origin requests are refused"))
	}))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !loopbackHost(r.Host) {
			d.fail(w, r, keepwatch.Errorf(keepwatch.EFORBIDDEN, "the local API answers only requests addressed to 127.0.0.1, ::1 or localhost"))
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
			if err != nil || mt != "application/json" {
				d.fail(w, r, keepwatch.Errorf(keepwatch.EINVALID, "Content-Type must be application/json"))
				return
			}
		}
		cop.Handler(mux).ServeHTTP(w, r)
	})
}

func loopbackHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (d *Daemon) fail(w http.ResponseWriter, r *http.Request, err error) {
	if keepwatch.ErrorCode(err) == keepwatch.EINTERNAL {
		d.Logger.Error("local API", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	respond.Error(w, r, nil, err)
}

func (d *Daemon) apiStatus(w http.ResponseWriter, r *http.Request) {
	s, err := d.Status()
	if err != nil {
		d.fail(w, r, err)
		return
	}
	respond.JSON(w, http.StatusOK, s)
}

func (d *Daemon) apiEvents(w http.ResponseWriter, r *http.Request) {
	var req eventsRequest
	if err := respond.DecodeJSON(w, r, maxLocalBody, &req); err != nil {
		d.fail(w, r, err)
		return
	}
	if len(req.Events) == 0 {
		d.fail(w, r, keepwatch.Errorf(keepwatch.EINVALID, `"events" must list at least one event`))
		return
	}
	if err := validEvents(req.Events, d.Now()); err != nil {
		d.fail(w, r, err)
		return
	}
	seq, err := d.RecordEvents(req.Events)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	respond.JSON(w, http.StatusAccepted, Recorded{Seq: seq})
}

func (d *Daemon) apiConditions(w http.ResponseWriter, r *http.Request) {
	var req conditionsRequest
	if err := respond.DecodeJSON(w, r, maxLocalBody, &req); err != nil {
		d.fail(w, r, err)
		return
	}
	if req.Conditions == nil {
		d.fail(w, r, keepwatch.Errorf(keepwatch.EINVALID, `"conditions" is required: the full set the VMS knows ([] when none)`))
		return
	}
	if err := validConditions(*req.Conditions); err != nil {
		d.fail(w, r, err)
		return
	}
	if err := validEvents(req.Events, d.Now()); err != nil {
		d.fail(w, r, err)
		return
	}
	seq, active, err := d.SetConditions(*req.Conditions, req.Events, req.Force)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	respond.JSON(w, http.StatusOK, Recorded{Seq: seq, Conditions: active})
}

func (d *Daemon) apiHeartbeat(w http.ResponseWriter, r *http.Request) {
	var req struct{}
	if err := respond.DecodeJSON(w, r, 1<<10, &req); err != nil {
		d.fail(w, r, err)
		return
	}
	seq, err := d.RecordHeartbeat()
	if err != nil {
		d.fail(w, r, err)
		return
	}
	respond.JSON(w, http.StatusAccepted, Recorded{Seq: seq})
}

func (d *Daemon) apiConsent(w http.ResponseWriter, r *http.Request) {
	var req consentRequest
	if err := respond.DecodeJSON(w, r, 1<<10, &req); err != nil {
		d.fail(w, r, err)
		return
	}
	if req.Consent == nil {
		d.fail(w, r, keepwatch.Errorf(keepwatch.EINVALID, `"consent" (true or false) is required`))
		return
	}
	seq, err := d.SetConsent(*req.Consent)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	respond.JSON(w, http.StatusOK, Recorded{Seq: seq, Consent: req.Consent})
}

// validConditions applies the wire protocol's rules (docs/protocol.md
// 6.2, 6.3) before anything is recorded: a report keepwatch would refuse
// must be refused here, where the VMS can still be told.
func validConditions(cs []protocol.PayloadCondition) error {
	if len(cs) > keepwatch.MaxConditions {
		return keepwatch.Errorf(keepwatch.EINVALID, "at most %d conditions", keepwatch.MaxConditions)
	}
	for i, c := range cs {
		if err := validItem(fmt.Sprintf("conditions[%d]", i), c.Kind, c.Subject, c.Message); err != nil {
			return err
		}
	}
	return nil
}

func validEvents(es []protocol.PayloadEvent, now time.Time) error {
	if len(es) > keepwatch.MaxEvents {
		return keepwatch.Errorf(keepwatch.EINVALID, "at most %d events per request", keepwatch.MaxEvents)
	}
	for i := range es {
		e := &es[i]
		if err := validItem(fmt.Sprintf("events[%d]", i), e.Kind, e.Subject, e.Message); err != nil {
			return err
		}
		if e.At.IsZero() {
			e.At = now.UTC()
		}
		if e.At.After(now.Add(time.Hour)) {
			return keepwatch.Errorf(keepwatch.EINVALID, "events[%d]: at is more than an hour in the future", i)
		}
		e.At = e.At.UTC()
	}
	return nil
}

func validItem(where, kind, subject, message string) error {
	if !keepwatch.ValidKind(kind) {
		return keepwatch.Errorf(keepwatch.EINVALID, "%s: kind must be lower-case letters, digits and _, starting with a letter (at most %d)", where, keepwatch.MaxKindLen)
	}
	if keepwatch.SetByKeepwatch(kind) {
		return keepwatch.Errorf(keepwatch.EINVALID, "%s: %s is keepwatch's own verdict, not reported", where, kind)
	}
	if !keepwatch.ValidText(subject, keepwatch.MaxSubjectLen) {
		return keepwatch.Errorf(keepwatch.EINVALID, "%s: subject must be at most %d bytes without control characters", where, keepwatch.MaxSubjectLen)
	}
	if !keepwatch.ValidText(message, keepwatch.MaxMessageLen) {
		return keepwatch.Errorf(keepwatch.EINVALID, "%s: message must be at most %d bytes without control characters", where, keepwatch.MaxMessageLen)
	}
	return nil
}
