package web_test

import (
	"net/url"
	"strconv"
	"strings"
	"testing"

	"keepwatch"
	"keepwatch/internal/store"
)

// The installation page draws each drive's used space with its forecast
// and full date, and its footage against the requirement; technicians set
// the expectations, which are judged at once and audited; the overview
// lists the installations filling soon.
func TestDrivesOnTheInstallationPage(t *testing.T) {
	f := newFixture(t, fixtureOptions{dialect: store.SQLite, seed: seedDemo})
	tech, viewer := f.session("alice-technician"), f.session("alice-viewer")
	status, _, body := f.do(viewer, "GET", "/installations/DEMO-1001", nil)
	if status != 200 {
		t.Fatalf("installation page: %d", status)
	}
	for _, want := range []string{`id="drives"`, `E:\Recordings`, `D:\Recordings`, `F:\Archive`, `class="drive-chart"`, `class="forecast"`,
		`class="full-label"`, "Footage kept <strong>19 days</strong>, 30 required", "kept level by the recorder", `class="ret-warning"`} {
		if !strings.Contains(body, want) {
			i := strings.Index(body, `id="drive-2"`)
			t.Errorf("the page lacks %s: %s", want, body[i:min(len(body), i+600)])
		}
	}
	if strings.Contains(body, `id="drive-settings-form"`) {
		t.Error("a viewer sees the drive settings form")
	}
	for _, rng := range []string{"90d", "365d"} {
		if status, _, body := f.do(viewer, "GET", "/installations/DEMO-1001?range="+rng, nil); status != 200 || !strings.Contains(body, `data-range="`+rng+`" aria-current="true"`) {
			t.Errorf("range %s: %d", rng, status)
		}
	}
	// The overview's filter.
	_, _, body = f.do(viewer, "GET", "/?filter=filling", nil)
	if !strings.Contains(body, `data-slc="DEMO-1001"`) || strings.Contains(body, `data-slc="DEMO-1003"`) || !strings.Contains(body, `Filling soon <span class="muted">(1)</span>`) {
		t.Errorf("filling soon lists the wrong installations")
	}

	// A refused form keeps its values and says why.
	status, _, body = f.do(tech, "POST", "/installations/DEMO-1001/drives", url.Values{"horizon": {"500"}, "required": {"30"}})
	if status != 400 || !strings.Contains(body, "the forecast horizon is 1 to 365 days") || !strings.Contains(body, `value="500"`) {
		t.Fatalf("refused form: %d", status)
	}
	if status, _, _ := f.do(viewer, "POST", "/installations/DEMO-1001/drives", url.Values{"horizon": {"5"}}); status != 403 {
		t.Fatalf("a viewer sets drive settings: %d", status)
	}
	// A horizon of 5 days clears the forecast (full in ~9); 15 days
	// required clears the retention warning; E: is required 40 days:
	// an error under half.
	_, _, body = f.do(tech, "GET", "/installations/DEMO-1001", nil)
	form := url.Values{"horizon": {"5"}, "required": {"15"}}
	for i := 0; ; i++ {
		p := hiddenValue(body, "drive_path_", i)
		if p == "" {
			break
		}
		form.Set("drive_path_"+itoa(i), p)
		if p == `E:\Recordings` {
			form.Set("drive_"+itoa(i), "40")
		}
	}
	status, hdr, _ := f.do(tech, "POST", "/installations/DEMO-1001/drives", form)
	if status != 303 || !strings.Contains(hdr.Get("Location"), "done=drives") {
		t.Fatalf("settings: %d %s", status, hdr.Get("Location"))
	}
	srv, err := f.a.Store.Servers(ctx, f.alice, "DEMO-1001")
	must(t, err)
	var kinds []string
	for _, c := range srv[0].Conditions {
		if keepwatch.SetByKeepwatch(c.Kind) {
			kinds = append(kinds, c.Kind+" "+string(c.Severity)+" "+c.Message)
		}
	}
	if len(kinds) != 1 || kinds[0] != "retention_short error footage kept 19 days, 40 required" {
		t.Fatalf("keepwatch's conditions %q", kinds)
	}
	log, err := f.a.Store.AuditLog(ctx, f.alice, 1)
	must(t, err)
	if log[0].Action != "drives.settings" || log[0].Target != "DEMO-1001" || !strings.Contains(log[0].Detail, `E:\Recordings 40 days`) {
		t.Fatalf("audit %+v", log[0])
	}
}

// hiddenValue finds the value of the hidden input name+i in a page.
func hiddenValue(body, name string, i int) string {
	marker := `name="` + name + itoa(i) + `" value="`
	k := strings.Index(body, marker)
	if k < 0 {
		return ""
	}
	rest := body[k+len(marker):]
	v, _, _ := strings.Cut(rest, `"`)
	return strings.NewReplacer("&#34;", `"`, "&amp;", "&", "&lt;", "<", "&gt;", ">", "&#39;", "'").Replace(v)
}

func itoa(i int) string { return strconv.Itoa(i) }
