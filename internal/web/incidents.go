package web

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"keepwatch"
)

// incidentRow is one incident on the incidents page.
type incidentRow struct {
	keepwatch.Incident
	Assignee    *keepwatch.Assignee
	Maintenance bool
}

type incidentsData struct {
	State    string // "", open, acknowledged, resolved
	Query    string
	SLC      string
	Rows     []incidentRow
	Users    []keepwatch.User
	Tabs     []count
	Back     string // this page, for the forms to return to
	Limited  bool
	LiveHref string
}

const incidentLimit = 500

func (h *Handler) incidents(w http.ResponseWriter, r *http.Request, rq *request) error {
	q := r.URL.Query()
	state, err := keepwatch.ParseIncidentState(q.Get("state"))
	if err != nil {
		return err
	}
	d := incidentsData{State: string(state), Query: strings.TrimSpace(q.Get("q"))}
	if s := q.Get("slc"); s != "" {
		if d.SLC, err = keepwatch.NormalizeSLC(s); err != nil {
			return err
		}
	}
	p, ctx := rq.principal(), r.Context()
	list, err := h.Store.Incidents(ctx, p.IntegratorID, state, incidentLimit)
	if err != nil {
		return err
	}
	d.Limited = len(list) == incidentLimit
	maint, err := h.Store.ActiveMaintenance(ctx, p.IntegratorID, h.now())
	if err != nil {
		return err
	}
	needle := strings.ToLower(d.Query)
	var ids []int64
	for _, n := range list {
		if d.SLC != "" && n.SLC != d.SLC {
			continue
		}
		if needle != "" && !strings.Contains(strings.ToLower(n.Customer+" "+n.SLC+" "+n.Kind+" "+kindLabel(n.Kind)+" "+n.Subject+" "+n.Server), needle) {
			continue
		}
		_, inMaint := maint[n.SLC]
		d.Rows = append(d.Rows, incidentRow{Incident: n, Maintenance: inMaint})
		ids = append(ids, n.ID)
	}
	assignees, err := h.Store.Assignees(ctx, p.IntegratorID, ids)
	if err != nil {
		return err
	}
	for i := range d.Rows {
		if a, ok := assignees[d.Rows[i].ID]; ok {
			d.Rows[i].Assignee = &a
		}
	}
	if p.Role.Allows(keepwatch.RoleTechnician) {
		if d.Users, err = h.Store.Users(ctx, p.IntegratorID); err != nil {
			return err
		}
	}
	link := func(state string) string {
		v := url.Values{}
		if state != "" {
			v.Set("state", state)
		}
		if d.Query != "" {
			v.Set("q", d.Query)
		}
		if d.SLC != "" {
			v.Set("slc", d.SLC)
		}
		if len(v) == 0 {
			return "/incidents"
		}
		return "/incidents?" + v.Encode()
	}
	for _, t := range []struct{ key, label string }{{"", "Active"}, {"open", "Open"}, {"acknowledged", "Acknowledged"}, {"resolved", "Resolved"}} {
		d.Tabs = append(d.Tabs, count{Key: t.key, Label: t.label, Href: link(t.key), Current: d.State == t.key})
	}
	d.Back = link(d.State)
	if strings.Contains(d.Back, "?") {
		d.LiveHref = d.Back + "&partial=1"
	} else {
		d.LiveHref = d.Back + "?partial=1"
	}
	pg := h.newPage(r, rq, "Incidents", "incidents", d)
	pg.Partial = q.Get("partial") != ""
	return h.render(w, http.StatusOK, "incidents", pg)
}

func incidentID(r *http.Request) (int64, error) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id < 1 {
		return 0, keepwatch.Errorf(keepwatch.ENOTFOUND, "no such incident in your account")
	}
	return id, nil
}

// formNote reads the optional note of an ack or resolve form.
func formNote(r *http.Request) (string, error) {
	note := strings.TrimSpace(r.PostFormValue("note"))
	if !keepwatch.ValidText(note, keepwatch.MaxMessageLen) {
		return "", keepwatch.Errorf(keepwatch.EINVALID, "a note must be at most %d printable characters on one line", keepwatch.MaxMessageLen)
	}
	return note, nil
}

// back is where a form on the incidents page returns to.
func back(r *http.Request, fallback string) string {
	b := r.PostFormValue("back")
	if b == "" || !strings.HasPrefix(b, "/") || strings.HasPrefix(b, "//") {
		return fallback
	}
	return b
}

func (h *Handler) ackIncident(w http.ResponseWriter, r *http.Request, rq *request) error {
	return h.transition(w, r, rq, "incident.ack", "acked", h.Store.AckIncident)
}

func (h *Handler) resolveIncident(w http.ResponseWriter, r *http.Request, rq *request) error {
	return h.transition(w, r, rq, "incident.resolve", "resolved", h.Store.ResolveIncident)
}

// transition acknowledges or resolves an incident with the form's note.
func (h *Handler) transition(w http.ResponseWriter, r *http.Request, rq *request, action, done string,
	apply func(context.Context, int64, int64, string, string) (keepwatch.Incident, error)) error {
	id, err := incidentID(r)
	if err != nil {
		return err
	}
	note, err := formNote(r)
	if err != nil {
		return err
	}
	p := rq.principal()
	n, err := apply(r.Context(), p.IntegratorID, id, p.Actor, note)
	if err != nil {
		return err
	}
	h.audit(r, rq, action, "incident "+strconv.FormatInt(id, 10), kindLabel(n.Kind)+" on "+n.SLC+reasonSuffix(note))
	redirectDone(w, r, back(r, "/incidents"), done)
	return nil
}

func (h *Handler) assignIncident(w http.ResponseWriter, r *http.Request, rq *request) error {
	id, err := incidentID(r)
	if err != nil {
		return err
	}
	var userID int64
	if s := r.PostFormValue("user"); s != "" {
		if userID, err = strconv.ParseInt(s, 10, 64); err != nil || userID < 0 {
			return keepwatch.Errorf(keepwatch.EINVALID, "choose a user of your account")
		}
	}
	p := rq.principal()
	email, err := h.Store.AssignIncident(r.Context(), p.IntegratorID, id, userID, p.Actor)
	if err != nil {
		return err
	}
	detail := "unassigned"
	if email != "" {
		detail = "to " + email
	}
	h.audit(r, rq, "incident.assign", "incident "+strconv.FormatInt(id, 10), detail)
	redirectDone(w, r, back(r, "/incidents"), "assigned")
	return nil
}
