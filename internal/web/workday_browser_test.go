package web_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"keepwatch"
	"keepwatch/internal/store"
)

// TestWorkingDayInChromium: a technician's day in a real browser, at
// laptop and phone sizes, on the demo-like data of the screenshots. One
// browser for the whole story; the last step stops the server.
func TestWorkingDayInChromium(t *testing.T) {
	chromiumPath(t)
	f := newFixture(t, fixtureOptions{dialect: store.SQLite, passwords: true, listen: true, seed: seedDemo})
	b := newBrowser(t, 3*time.Minute)
	f.signIn(t, b, f.emails["alice-owner"])
	site := demoIncident(t, f, keepwatch.KindSiteUnreachable)
	laptop := chromedp.EmulateViewport(1366, 860)
	phone := chromedp.EmulateViewport(390, 844)

	// Every page the owner can open, the error page included.
	var pages []string
	for _, rt := range f.a.Web.Routes() {
		if rt.Method == "GET" && rt.Role != "" {
			pages = append(pages, strings.NewReplacer("{$}", "?filter=all", "{slc}", "DEMO-1001", "{id}", fmt.Sprint(site)).Replace(rt.Pattern))
		}
	}
	pages = append(pages, "/", "/installations/DEMO-1002", "/installations/DEMO-1009", "/installations/DEMO-1012", "/incidents?group=none",
		"/incidents?state=resolved", "/account?setup=totp", "/no-such-page")

	t.Run("EveryPageFitsAPhoneAndALaptop", func(t *testing.T) {
		for _, size := range []struct {
			name string
			vp   chromedp.Action[chromedp.Void]
		}{{"phone", phone}, {"laptop", laptop}} {
			for _, p := range pages {
				run(t, b, size.vp, chromedp.Navigate(f.base+p), chromedp.WaitVisible(chromedp.CSS("main")))
				if over := eval[int](t, b, `document.documentElement.scrollWidth - window.innerWidth`); over > 0 {
					t.Errorf("%s on a %s: %d px wider than the screen", p, size.name, over)
				}
				// A time or an SLC is never broken across lines.
				if broken := eval[int](t, b, `[...document.querySelectorAll('time.at, .slc')].filter(e => e.getClientRects().length > 1).length`); broken > 0 && size.name == "laptop" {
					t.Errorf("%s on a %s: %d times or SLCs broken across lines", p, size.name, broken)
				}
				if m := rfc3339.FindString(eval[string](t, b, `document.body.innerText`)); m != "" {
					t.Errorf("%s shows a time as %s", p, m)
				}
			}
		}
	})

	t.Run("TimelineDotsCheckboxesAndPlaceholdersFit", func(t *testing.T) {
		for _, vp := range []chromedp.Action[chromedp.Void]{laptop, phone} {
			for _, p := range []string{"/installations/DEMO-1001", fmt.Sprintf("/incidents/%d", site), "/incidents", "/settings", "/registrations", "/notifications", "/"} {
				run(t, b, vp, chromedp.Navigate(f.base+p), chromedp.WaitVisible(chromedp.CSS("main")))
				// A dot of a timeline lies inside its list, which may scroll.
				cut := eval[int](t, b, `[...document.querySelectorAll('.timeline li')].filter(li => {
					const ol = li.closest('.timeline').getBoundingClientRect(), cs = getComputedStyle(li, '::before');
					return li.getBoundingClientRect().left + parseFloat(cs.left) < ol.left - 0.5 }).length`)
				if cut > 0 {
					t.Errorf("%s: %d timeline dots cut", p, cut)
				}
				// A checkbox or radio sits on its label's line.
				if off := eval[[]string](t, b, `[...document.querySelectorAll('label.checkbox')].filter(l => l.offsetParent).filter(l => {
					const i = l.querySelector('input').getBoundingClientRect(), r = l.getBoundingClientRect();
					return Math.abs((i.top + i.bottom) / 2 - (r.top + r.bottom) / 2) > 3 }).map(l => l.textContent.trim())`); len(off) > 0 {
					t.Errorf("%s: boxes off their labels: %q", p, off)
				}
				// A placeholder is read whole.
				if cut := eval[[]string](t, b, `[...document.querySelectorAll('input[placeholder]')].filter(i => i.offsetParent).filter(i => {
					const c = document.createElement('canvas').getContext('2d'), cs = getComputedStyle(i);
					c.font = cs.fontStyle + ' ' + cs.fontWeight + ' ' + cs.fontSize + ' ' + cs.fontFamily;
					return c.measureText(i.placeholder).width > i.clientWidth - parseFloat(cs.paddingLeft) - parseFloat(cs.paddingRight) + 1 }).map(i => i.id + ': ' + i.placeholder)`); len(cut) > 0 {
					t.Errorf("%s: placeholders cut: %q", p, cut)
				}
			}
		}
	})

	t.Run("PhoneMenuFoldsAndCountersStayCompact", func(t *testing.T) {
		run(t, b, phone, chromedp.Navigate(f.base+"/"), chromedp.WaitVisible(chromedp.CSS("#rows")))
		if eval[bool](t, b, `document.querySelector('#nav').offsetParent !== null`) {
			t.Fatal("the navigation takes the phone's first screen")
		}
		run(t, b, chromedp.Click(chromedp.CSS("#menu-toggle")), chromedp.WaitVisible(chromedp.CSS(`#nav a[href="/settings"]`)))
		if r := eval[float64](t, b, `document.querySelector('#nav a[href="/settings"]').getBoundingClientRect().right`); r > 390 {
			t.Fatalf("Settings is off-screen (right edge at %.0f px)", r)
		}
		run(t, b, chromedp.Click(chromedp.CSS("#menu-toggle")))
		// Counters leave room for the installations on the first screen.
		if h := eval[float64](t, b, `document.querySelector('.counts').getBoundingClientRect().height`); h > 130 {
			t.Errorf("counters are %.0f px tall on a phone", h)
		}
		if top := eval[float64](t, b, `document.querySelector('#rows tr').getBoundingClientRect().top`); top > 450 {
			t.Errorf("the first installation starts %.0f px down the phone's screen", top)
		}
		if h := eval[float64](t, b, `document.querySelector('#rows tr').getBoundingClientRect().height`); h > 260 {
			t.Errorf("an installation's row is %.0f px tall on a phone", h)
		}
		run(t, b, chromedp.Navigate(f.base+"/incidents"), chromedp.WaitVisible(chromedp.CSS("#incident-list")))
		if r := eval[float64](t, b, `Math.max(...[...document.querySelectorAll('.tabs a')].map(a => a.getBoundingClientRect().right))`); r > 390 {
			t.Errorf("incident tabs are cut (right edge at %.0f px)", r)
		}
		if h := eval[float64](t, b, `document.querySelector('tr.incident').getBoundingClientRect().height`); h > 200 {
			t.Errorf("an incident's row is %.0f px tall on a phone", h)
		}
	})

	t.Run("RefusedFormShowsItsErrorInView", func(t *testing.T) {
		run(t, b, laptop,
			chromedp.Navigate(f.base+"/installations/DEMO-1001"),
			chromedp.WaitVisible(chromedp.CSS("#maintenance-form")),
			chromedp.SendKeys(chromedp.CSS("#m-start"), "tomorrow 10pm"),
			chromedp.SendKeys(chromedp.CSS("#m-reason"), "new disks"),
			chromedp.Click(chromedp.CSS("#set-maintenance")),
			chromedp.WaitVisible(chromedp.CSS("#maintenance-start_at-error")),
		)
		time.Sleep(200 * time.Millisecond)
		if !eval[bool](t, b, `(() => { const r = document.getElementById('maintenance-start_at-error').getBoundingClientRect(); return r.top >= 0 && r.bottom <= innerHeight })()`) {
			t.Fatal("the error is out of view")
		}
		if id := eval[string](t, b, `document.activeElement.id`); id != "m-start" {
			t.Fatalf("focus is on %q", id)
		}
		if v := eval[string](t, b, `document.getElementById('m-reason').value`); v != "new disks" {
			t.Fatalf("the reason was lost: %q", v)
		}
	})

	t.Run("ReloadAfterCreatingATokenMakesNoSecond", func(t *testing.T) {
		run(t, b, laptop,
			chromedp.Navigate(f.base+"/settings"),
			chromedp.WaitVisible(chromedp.CSS("#create-token")),
			chromedp.SendKeys(chromedp.CSS("#t-name"), "nightly export"),
			chromedp.Click(chromedp.CSS("#create-token button[type=submit]")),
			chromedp.WaitVisible(chromedp.CSS("#new-secret")),
		)
		secret := eval[string](t, b, `document.getElementById('new-secret').value`)
		run(t, b, chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS("#tokens")))
		if n := eval[int](t, b, `[...document.querySelectorAll('#tokens td[data-label=Name]')].filter(td => td.textContent === 'nightly export').length`); n != 1 {
			t.Fatalf("%d tokens named “nightly export” after a reload", n)
		}
		if strings.Contains(eval[string](t, b, `document.documentElement.outerHTML`), secret) {
			t.Fatal("the token is shown again after a reload")
		}
	})

	t.Run("BulkAcknowledgeStaysInPlace", func(t *testing.T) {
		run(t, b, laptop, chromedp.Navigate(f.base+"/incidents?severity=error"), chromedp.WaitVisible(chromedp.CSS("#bulk")))
		boxes := `#incident-list input[name=id]`
		if count(t, b, boxes) < 3 {
			t.Fatalf("%d incidents to tick", count(t, b, boxes))
		}
		ids := eval[[]string](t, b, `[...document.querySelectorAll('`+boxes+`')].slice(-2).map(b => b.value)`)
		for _, id := range ids {
			run(t, b, chromedp.Click(chromedp.CSS(boxes+`[value="`+id+`"]`)))
		}
		if got := text(t, b, "#selected-count"); got != "2 selected" {
			t.Fatalf("selection: %q", got)
		}
		eval[int](t, b, `window.scrollTo(0, document.body.scrollHeight), 0`)
		run(t, b, chromedp.SendKeys(chromedp.CSS("#bulk-note"), "batch"), chromedp.Click(chromedp.CSS("#bulk-ack")), chromedp.WaitVisible(chromedp.CSS("#flash")))
		loc, _ := chromedp.Run(b, chromedp.Location())
		if !strings.Contains(loc, "/incidents?") || !strings.Contains(loc, "severity=error") || !strings.Contains(loc, "#incident-"+ids[0]) {
			t.Fatalf("after the bulk action: %s", loc)
		}
		if !eval[bool](t, b, `(() => { const r = document.getElementById('incident-`+ids[0]+`').getBoundingClientRect(); return r.top >= 0 && r.top < innerHeight })()`) {
			t.Fatal("the page did not stay on the incidents acted on")
		}
		if got := text(t, b, "#flash"); !strings.Contains(got, "acknowledged") {
			t.Fatalf("notice: %q", got)
		}
		for _, id := range ids {
			var n int64
			fmt.Sscan(id, &n)
			if in, _ := f.a.Store.Incident(ctx, f.alice, n); in.State != keepwatch.IncidentAcknowledged {
				t.Errorf("incident %s is %s", id, in.State)
			}
		}
	})

	t.Run("LiveUpdatesStopAndTheBannerSaysSo", func(t *testing.T) {
		run(t, b, laptop, chromedp.Navigate(f.base+"/"), chromedp.WaitVisible(chromedp.CSS(`#live-status[data-state="on"]`)))
		if !eval[bool](t, b, `document.getElementById('stale').hidden`) {
			t.Fatal("the stale banner shows while live")
		}
		c, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		f.a.Shutdown(c)
		run(t, b, chromedp.WaitVisible(chromedp.CSS("#stale")))
		if got := text(t, b, "#stale"); !strings.Contains(got, "Live updates stopped at") || !exact.MatchString(got) {
			t.Fatalf("banner: %q", got)
		}
	})
}
