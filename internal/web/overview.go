package web

import (
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"keepwatch"
)

// pageSize bounds the rows of one overview page; a fleet of thousands is
// searched and paged, not scrolled.
const pageSize = 200

func (h *Handler) parseTemplates() error {
	h.pages = map[string]*template.Template{}
	for _, name := range []string{"login", "overview", "installation", "incidents", "incident", "registrations", "settings", "notifications", "error"} {
		t, err := template.New(name).Funcs(templateFuncs()).ParseFS(assets, "templates/layout.html", "templates/parts.html", "templates/"+name+".html")
		if err != nil {
			return err
		}
		h.pages[name] = t
	}
	return nil
}

// count is one of the overview's counters.
type count struct {
	Key, Label string
	N          int
	Href       string
	Current    bool
}

type overviewData struct {
	Filter   string // errors, all or filling
	State    string // one display state, or ""
	Query    string
	Rows     []overviewRow
	Counts   []count
	Total    int
	Shown    int // rows matching the filters, before paging
	Page     int
	Pages    int
	PrevHref string
	NextHref string
	AllHref  string
	ErrHref  string
	// FillHref lists the installations with a drive that will be full
	// within its horizon (storage_forecast); Filling counts them.
	FillHref string
	Filling  int
	LiveHref string
	Today    keepwatch.Date
	// Reenrollments counts the re-enrollments waiting for approval.
	Reenrollments int
}

func (h *Handler) overview(w http.ResponseWriter, r *http.Request, rq *request) error {
	q := r.URL.Query()
	d := overviewData{Filter: q.Get("filter"), State: q.Get("state"), Query: strings.TrimSpace(q.Get("q")), Today: h.today()}
	if d.Filter != "all" && d.Filter != "filling" {
		d.Filter = "errors"
	}
	if len(d.Query) > 100 {
		d.Query = d.Query[:100]
	}
	if d.State != "" && stateLabels[d.State] == "" {
		return keepwatch.Errorf(keepwatch.EINVALID, "unknown status filter %q", d.State)
	}
	d.Page, _ = strconv.Atoi(q.Get("page"))
	d.Page = max(d.Page, 1)

	p := rq.principal()
	views, err := h.Store.Installations(r.Context(), p.IntegratorID, h.now())
	if err != nil {
		return err
	}
	needle := strings.ToLower(d.Query)
	tally := keepwatch.CountStatuses(views)
	// Only the page's rows are built; the rest are counted and skipped.
	var matches []int
	for i := range views {
		v := &views[i]
		filling := fillingSoon(v)
		if filling {
			d.Filling++
		}
		switch {
		case d.Filter == "filling" && !filling:
			continue
		case d.State != "" && string(v.Status) != d.State:
			continue
		case d.State == "" && d.Filter == "errors" && !v.Status.NeedsAttention():
			continue
		case needle != "" && !containsFold(v.Customer, needle) && !containsFold(v.SLC, needle):
			continue
		}
		matches = append(matches, i)
	}
	d.Total, d.Shown = len(views), len(matches)
	d.Pages = max(1, (len(matches)+pageSize-1)/pageSize)
	d.Page = min(d.Page, d.Pages)
	for _, i := range matches[(d.Page-1)*pageSize : min(len(matches), d.Page*pageSize)] {
		d.Rows = append(d.Rows, overviewRow{InstallationView: views[i]})
	}
	if err := h.whoIsOnIt(r.Context(), p.IntegratorID, d.Rows); err != nil {
		return err
	}

	link := func(filter, state, query string, page int) string {
		v := url.Values{}
		if filter == "all" || filter == "filling" {
			v.Set("filter", filter)
		}
		if state != "" {
			v.Set("state", state)
		}
		if query != "" {
			v.Set("q", query)
		}
		if page > 1 {
			v.Set("page", strconv.Itoa(page))
		}
		if len(v) == 0 {
			return "/"
		}
		return "/?" + v.Encode()
	}
	for _, s := range counterOrder {
		key := string(s)
		d.Counts = append(d.Counts, count{Key: key, Label: counterLabels[s], N: tally[s], Href: link("all", key, d.Query, 1), Current: d.State == key})
	}
	d.AllHref, d.ErrHref, d.FillHref = link("all", "", d.Query, 1), link("errors", "", d.Query, 1), link("filling", "", d.Query, 1)
	if d.Page > 1 {
		d.PrevHref = link(d.Filter, d.State, d.Query, d.Page-1)
	}
	if d.Page < d.Pages {
		d.NextHref = link(d.Filter, d.State, d.Query, d.Page+1)
	}
	live := link(d.Filter, d.State, d.Query, d.Page)
	if strings.Contains(live, "?") {
		d.LiveHref = live + "&partial=1"
	} else {
		d.LiveHref = live + "?partial=1"
	}
	reen, err := h.Store.Reenrollments(r.Context(), rq.principal().IntegratorID, 100)
	if err != nil {
		return err
	}
	for _, re := range reen {
		if re.State == keepwatch.ReenrollmentPending {
			d.Reenrollments++
		}
	}
	pg := h.newPage(r, rq, "Overview", "overview", d)
	pg.Partial = q.Get("partial") != ""
	return h.render(w, http.StatusOK, "overview", pg)
}

// containsFold reports whether s contains the lower-case needle, ignoring
// case, without allocating for ASCII text.
func containsFold(s, needle string) bool {
	for i := 0; i+len(needle) <= len(s); i++ {
		if strings.EqualFold(s[i:i+len(needle)], needle) {
			return true
		}
	}
	return false
}

// fillingSoon tells whether one of an installation's drives will be full
// within its horizon.
func fillingSoon(v *keepwatch.InstallationView) bool {
	for _, c := range v.Conditions {
		if c.Kind == keepwatch.KindStorageForecast {
			return true
		}
	}
	return false
}
