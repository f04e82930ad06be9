package web

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"keepwatch"
)

// incidentRow is one incident in a list, with who it is assigned to and
// the server outages it speaks for (a site outage).
type incidentRow struct {
	keepwatch.Incident
	Assignee    *keepwatch.Assignee
	Maintenance bool
	Children    []incidentRow
}

// incidentGroup is the incidents of one installation.
type incidentGroup struct {
	SLC, Customer string
	Rows          []incidentRow
	// Count is how many incidents the group holds, a site outage's
	// servers included.
	Count int
}

// incidentRows adds assignees and maintenance to incidents.
func (h *Handler) incidentRows(ctx context.Context, integratorID int64, list []keepwatch.Incident, maint map[string]keepwatch.MaintenanceWindow) ([]incidentRow, error) {
	ids := make([]int64, 0, len(list))
	for _, n := range list {
		ids = append(ids, n.ID)
	}
	assignees, err := h.Store.Assignees(ctx, integratorID, ids)
	if err != nil {
		return nil, err
	}
	rows := make([]incidentRow, 0, len(list))
	for _, n := range list {
		row := incidentRow{Incident: n}
		if a, ok := assignees[n.ID]; ok {
			row.Assignee = &a
		}
		_, row.Maintenance = maint[n.SLC]
		rows = append(rows, row)
	}
	return rows, nil
}

// groupIncidents puts the server outages of a site outage inside its row
// (one outage, one row) and, when byInstallation, the rows of one
// installation together, in the order the list had them.
func groupIncidents(rows []incidentRow, byInstallation bool) []incidentGroup {
	parent := map[int64]int{}
	for i, r := range rows {
		if r.Kind == keepwatch.KindSiteUnreachable {
			parent[r.ID] = i
		}
	}
	var top []incidentRow
	children := map[int64][]incidentRow{}
	for _, r := range rows {
		if r.ParentID != nil {
			if _, ok := parent[*r.ParentID]; ok {
				children[*r.ParentID] = append(children[*r.ParentID], r)
				continue
			}
		}
		top = append(top, r)
	}
	for i := range top {
		top[i].Children = children[top[i].ID]
	}
	if !byInstallation {
		g := incidentGroup{Rows: top}
		for _, r := range top {
			g.Count += 1 + len(r.Children)
		}
		if len(top) == 0 {
			return nil
		}
		return []incidentGroup{g}
	}
	var groups []incidentGroup
	at := map[string]int{}
	for _, r := range top {
		i, ok := at[r.SLC]
		if !ok {
			i = len(groups)
			at[r.SLC] = i
			groups = append(groups, incidentGroup{SLC: r.SLC, Customer: r.Customer})
		}
		groups[i].Rows = append(groups[i].Rows, r)
		groups[i].Count += 1 + len(r.Children)
	}
	return groups
}

// incidentFilter is what the incidents list shows.
type incidentFilter struct {
	State    string // "", open, acknowledged, resolved
	Query    string
	SLC      string
	Severity string // "", error, warning
	Mine     bool   // assigned to the signed-in user
	Flat     bool   // one list, newest first, instead of by installation
}

func parseIncidentFilter(q url.Values) (incidentFilter, error) {
	f := incidentFilter{Query: strings.TrimSpace(q.Get("q")), Mine: q.Get("mine") == "1", Flat: q.Get("group") == "none"}
	if len(f.Query) > 100 {
		f.Query = f.Query[:100]
	}
	state, err := keepwatch.ParseIncidentState(q.Get("state"))
	if err != nil {
		return f, err
	}
	f.State = string(state)
	switch s := q.Get("severity"); s {
	case "", "error", "warning":
		f.Severity = s
	default:
		return f, keepwatch.Errorf(keepwatch.EINVALID, "severity must be error or warning")
	}
	if s := q.Get("slc"); s != "" {
		if f.SLC, err = keepwatch.NormalizeSLC(s); err != nil {
			return f, err
		}
	}
	return f, nil
}

// href is the list's address with f's filters, and state instead of
// f.State.
func (f incidentFilter) href(state string) string {
	v := url.Values{}
	if state != "" {
		v.Set("state", state)
	}
	if f.Query != "" {
		v.Set("q", f.Query)
	}
	if f.SLC != "" {
		v.Set("slc", f.SLC)
	}
	if f.Severity != "" {
		v.Set("severity", f.Severity)
	}
	if f.Mine {
		v.Set("mine", "1")
	}
	if f.Flat {
		v.Set("group", "none")
	}
	if len(v) == 0 {
		return "/incidents"
	}
	return "/incidents?" + v.Encode()
}

type incidentsData struct {
	incidentFilter
	Groups   []incidentGroup
	Shown    int
	Users    []keepwatch.User
	Tabs     []count
	Back     string // this list, for the forms to return to
	Limited  bool
	LiveHref string
	// Technician: the signed-in user may act on incidents.
	Technician bool
}

const incidentLimit = 500

func (h *Handler) incidents(w http.ResponseWriter, r *http.Request, rq *request) error {
	q := r.URL.Query()
	f, err := parseIncidentFilter(q)
	if err != nil {
		return err
	}
	d := incidentsData{incidentFilter: f}
	p, ctx := rq.principal(), r.Context()
	list, err := h.Store.Incidents(ctx, p.IntegratorID, keepwatch.IncidentState(f.State), incidentLimit)
	if err != nil {
		return err
	}
	d.Limited = len(list) == incidentLimit
	maint, err := h.Store.ActiveMaintenance(ctx, p.IntegratorID, h.now())
	if err != nil {
		return err
	}
	needle := strings.ToLower(f.Query)
	var keep []keepwatch.Incident
	for _, n := range list {
		switch {
		case f.SLC != "" && n.SLC != f.SLC:
		case f.Severity != "" && string(n.Severity) != f.Severity:
		case needle != "" && !strings.Contains(strings.ToLower(n.Customer+" "+n.SLC+" "+n.Kind+" "+kindLabel(n.Kind)+" "+n.Subject+" "+n.Server), needle):
		default:
			keep = append(keep, n)
		}
	}
	rows, err := h.incidentRows(ctx, p.IntegratorID, keep, maint)
	if err != nil {
		return err
	}
	if f.Mine {
		mine := rows[:0]
		for _, r := range rows {
			if r.Assignee != nil && r.Assignee.UserID == rq.session.UserID {
				mine = append(mine, r)
			}
		}
		rows = mine
	}
	d.Shown = len(rows)
	d.Groups = groupIncidents(rows, !f.Flat)
	if d.Technician = p.Role.Allows(keepwatch.RoleTechnician); d.Technician {
		if d.Users, err = h.Store.Users(ctx, p.IntegratorID); err != nil {
			return err
		}
	}
	for _, t := range []struct{ key, label string }{{"", "Active"}, {"open", "Open"}, {"acknowledged", "Acknowledged"}, {"resolved", "Resolved"}} {
		d.Tabs = append(d.Tabs, count{Key: t.key, Label: t.label, Href: f.href(t.key), Current: f.State == t.key})
	}
	d.Back = f.href(f.State)
	if strings.Contains(d.Back, "?") {
		d.LiveHref = d.Back + "&partial=1"
	} else {
		d.LiveHref = d.Back + "?partial=1"
	}
	pg := h.newPage(r, rq, "Incidents", "incidents", d)
	pg.Partial = q.Get("partial") != ""
	if err := h.notice(r, rq, pg); err != nil {
		return err
	}
	return h.render(w, http.StatusOK, "incidents", pg)
}

// notice shows the outcome of a bulk action, kept in the session's flash
// (its counts are not among the fixed confirmations a link may ask for).
func (h *Handler) notice(r *http.Request, rq *request, pg *page) error {
	if r.URL.Query().Get("done") != "bulk" || pg.Partial {
		return nil
	}
	msg, err := h.takeFlash(r.Context(), rq, "notice")
	if err != nil {
		return err
	}
	pg.Flash = msg
	return nil
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
		return "", keepwatch.Invalid("note", "a note must be at most %d printable characters on one line", keepwatch.MaxMessageLen)
	}
	return note, nil
}

// back is where a form on an incident list or page returns to.
func back(r *http.Request, fallback string) string {
	b := r.PostFormValue("back")
	if b == "" || !strings.HasPrefix(b, "/") || strings.HasPrefix(b, "//") || strings.Contains(b, "\\") {
		return fallback
	}
	return b
}

// refusedAction shows a refused action on an incident on the incident's
// page, beside the form that was posted; other errors go to the error
// page.
func (h *Handler) refusedAction(w http.ResponseWriter, r *http.Request, rq *request, id int64, form string, err error) error {
	switch keepwatch.ErrorCode(err) {
	case keepwatch.EINVALID, keepwatch.ECONFLICT, keepwatch.ECONDITIONACTIVE:
		return h.renderIncident(w, r, rq, id, statusOfRefusal(err), refusedForm(r, form, "note", err))
	}
	return err
}

func (h *Handler) ackIncident(w http.ResponseWriter, r *http.Request, rq *request) error {
	return h.transition(w, r, rq, "ack", "incident.ack", "acked", h.Store.AckIncident)
}

func (h *Handler) resolveIncident(w http.ResponseWriter, r *http.Request, rq *request) error {
	return h.transition(w, r, rq, "resolve", "incident.resolve", "resolved", h.Store.ResolveIncident)
}

// transition acknowledges or resolves an incident with the form's note,
// and returns to where the form was, on the incident's row.
func (h *Handler) transition(w http.ResponseWriter, r *http.Request, rq *request, form, action, done string,
	apply func(context.Context, int64, int64, string, string) (keepwatch.Incident, error)) error {
	id, err := incidentID(r)
	if err != nil {
		return err
	}
	note, err := formNote(r)
	if err != nil {
		return h.refusedAction(w, r, rq, id, form, err)
	}
	p := rq.principal()
	n, err := apply(r.Context(), p.IntegratorID, id, p.Actor, note)
	if err != nil {
		return h.refusedAction(w, r, rq, id, form, err)
	}
	h.audit(r, rq, action, "incident "+strconv.FormatInt(id, 10), kindLabel(n.Kind)+" on "+n.SLC+reasonSuffix(note))
	if form == "ack" && n.Kind == keepwatch.KindSiteUnreachable {
		// The servers a site outage speaks for are acknowledged with it.
		ids, err := h.withServers(r.Context(), p.IntegratorID, []int64{id})
		if err != nil {
			return err
		}
		for _, sid := range ids[1:] {
			if s, err := h.Store.AckIncident(r.Context(), p.IntegratorID, sid, p.Actor, note); err == nil {
				h.audit(r, rq, action, "incident "+strconv.FormatInt(sid, 10), kindLabel(s.Kind)+" on "+s.SLC+reasonSuffix(note))
			} else if keepwatch.ErrorCode(err) != keepwatch.ECONFLICT {
				return err
			}
		}
	}
	redirectTo(w, r, back(r, "/incidents"), done, fmt.Sprintf("incident-%d", id))
	return nil
}

// formUser reads the user an incident is assigned to (0: nobody).
func formUser(r *http.Request) (int64, error) {
	s := r.PostFormValue("user")
	if s == "" {
		return 0, nil
	}
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id < 0 {
		return 0, keepwatch.Invalid("user", "choose a user of your account")
	}
	return id, nil
}

func (h *Handler) assignIncident(w http.ResponseWriter, r *http.Request, rq *request) error {
	id, err := incidentID(r)
	if err != nil {
		return err
	}
	userID, err := formUser(r)
	if err != nil {
		return h.refusedAction(w, r, rq, id, "assign", err)
	}
	p := rq.principal()
	email, err := h.Store.AssignIncident(r.Context(), p.IntegratorID, id, userID, p.Actor)
	if err != nil {
		return h.refusedAction(w, r, rq, id, "assign", err)
	}
	h.audit(r, rq, "incident.assign", "incident "+strconv.FormatInt(id, 10), assignedDetail(email))
	// Whoever has a site outage has the servers it speaks for.
	ids, err := h.withServers(r.Context(), p.IntegratorID, []int64{id})
	if err != nil {
		return err
	}
	for _, sid := range ids[1:] {
		if _, err := h.Store.AssignIncident(r.Context(), p.IntegratorID, sid, userID, p.Actor); err != nil {
			return err
		}
		h.audit(r, rq, "incident.assign", "incident "+strconv.FormatInt(sid, 10), assignedDetail(email))
	}
	redirectTo(w, r, back(r, "/incidents"), "assigned", fmt.Sprintf("incident-%d", id))
	return nil
}

func assignedDetail(email string) string {
	if email == "" {
		return "unassigned"
	}
	return "to " + email
}

// withServers adds to ids the server outages of the site outages among
// them: acting on a site outage acts on the servers it speaks for.
func (h *Handler) withServers(ctx context.Context, integratorID int64, ids []int64) ([]int64, error) {
	open, err := h.Store.Incidents(ctx, integratorID, "", incidentLimit)
	if err != nil {
		return nil, err
	}
	want := map[int64]bool{}
	for _, id := range ids {
		want[id] = true
	}
	out := ids
	for _, n := range open {
		if n.ParentID != nil && want[*n.ParentID] && !want[n.ID] {
			want[n.ID] = true
			out = append(out, n.ID)
		}
	}
	return out, nil
}

// maxBulk bounds the incidents one bulk action changes.
const maxBulk = 500

// bulkIncidents acknowledges, or assigns, the incidents ticked on the
// list, each as its own change (audited, compare-and-set), and returns to
// the list where it was.
func (h *Handler) bulkIncidents(w http.ResponseWriter, r *http.Request, rq *request) error {
	to := back(r, "/incidents")
	var ids []int64
	for _, s := range r.PostForm["id"] {
		id, err := strconv.ParseInt(s, 10, 64)
		if err != nil || id < 1 {
			return keepwatch.Errorf(keepwatch.ENOTFOUND, "no such incident in your account")
		}
		ids = append(ids, id)
	}
	if len(ids) > maxBulk {
		return keepwatch.Errorf(keepwatch.EINVALID, "act on at most %d incidents at once", maxBulk)
	}
	action := r.PostFormValue("action")
	if len(ids) == 0 {
		return h.bulkNotice(w, r, rq, to, 0, "Tick the incidents to act on first.")
	}
	p, ctx := rq.principal(), r.Context()
	first := ids[0]
	ids, err := h.withServers(ctx, p.IntegratorID, ids)
	if err != nil {
		return err
	}
	var done, skipped int
	switch action {
	case "ack":
		note, err := formNote(r)
		if err != nil {
			return err
		}
		for _, id := range ids {
			n, err := h.Store.AckIncident(ctx, p.IntegratorID, id, p.Actor, note)
			switch keepwatch.ErrorCode(err) {
			case "":
				done++
				h.audit(r, rq, "incident.ack", "incident "+strconv.FormatInt(id, 10), kindLabel(n.Kind)+" on "+n.SLC+reasonSuffix(note))
			case keepwatch.ECONFLICT:
				skipped++
			default:
				return err
			}
		}
		msg := fmt.Sprintf("%d acknowledged.", done)
		if skipped > 0 {
			msg += fmt.Sprintf(" %d %s not open any more and left as %s.", skipped, plural(skipped, "was", "were"), plural(skipped, "it was", "they were"))
		}
		return h.bulkNotice(w, r, rq, to, first, msg)
	case "assign":
		userID, err := formUser(r)
		if err != nil {
			return err
		}
		email := ""
		for _, id := range ids {
			if email, err = h.Store.AssignIncident(ctx, p.IntegratorID, id, userID, p.Actor); err != nil {
				return err
			}
			done++
			h.audit(r, rq, "incident.assign", "incident "+strconv.FormatInt(id, 10), assignedDetail(email))
		}
		who := "nobody"
		if email != "" {
			who = email
		}
		return h.bulkNotice(w, r, rq, to, first, fmt.Sprintf("%d assigned to %s.", done, who))
	}
	return keepwatch.Errorf(keepwatch.EINVALID, "choose to acknowledge or to assign")
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// bulkNotice returns to the list, on the first incident acted on, and
// says what the bulk action did.
func (h *Handler) bulkNotice(w http.ResponseWriter, r *http.Request, rq *request, to string, first int64, msg string) error {
	if err := h.putFlash(r.Context(), rq, "notice", msg); err != nil {
		return err
	}
	anchor := "incident-list"
	if first != 0 {
		anchor = fmt.Sprintf("incident-%d", first)
	}
	redirectTo(w, r, to, "bulk", anchor)
	return nil
}
