package web_test

import (
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"keepwatch"
	"keepwatch/internal/store"
)

// TestChannelFormShowsTheFieldsOfTheChosenTypeInChromium: choosing a
// channel type shows that type's fields only, and a PagerDuty channel
// added through the form is stored with its key.
func TestChannelFormShowsTheFieldsOfTheChosenTypeInChromium(t *testing.T) {
	chromiumPath(t)
	f := newFixture(t, fixtureOptions{dialect: store.SQLite, passwords: true, listen: true})
	b := newBrowser(t, time.Minute)
	f.signIn(t, b, f.emails["alice-owner"])
	run(t, b, chromedp.Navigate(f.base+"/notifications"), chromedp.WaitVisible(chromedp.CSS("#add-channel")))
	visible := func(id string) bool {
		return eval[bool](t, b, `(() => { const e = document.getElementById('`+id+`'); return !!e && e.getClientRects().length > 0; })()`)
	}
	choose := func(typ string) {
		run(t, b, chromedp.SetValue(chromedp.CSS("#c-type"), typ))
		eval[bool](t, b, `document.getElementById('c-type').dispatchEvent(new Event('change'))`)
	}
	if !visible("c-target") || visible("c-rk") || visible("c-url") {
		t.Fatal("e-mail: the form shows other types' fields")
	}
	for _, c := range []struct {
		typ      string
		shown    []string
		notShown []string
	}{
		{"pagerduty", []string{"c-rk", "c-endpoint"}, []string{"c-target", "c-url", "c-token", "c-cid"}},
		{"halopsa", []string{"c-cid", "c-csec", "c-endpoint"}, []string{"c-rk", "c-target"}},
		{"opsgenie", []string{"c-gk", "c-endpoint"}, []string{"c-rk", "c-target", "c-token"}},
		{"slack", []string{"c-url"}, []string{"c-rk", "c-target", "c-sig"}},
		{"webhook", []string{"c-target", "c-sig"}, []string{"c-url", "c-endpoint"}},
	} {
		choose(c.typ)
		for _, id := range c.shown {
			if !visible(id) {
				t.Errorf("%s: %s hidden", c.typ, id)
			}
		}
		for _, id := range c.notShown {
			if visible(id) {
				t.Errorf("%s: %s shown", c.typ, id)
			}
		}
	}
	const key = "pdkey0abcdefghijklmnopqrstuvwxyz"
	choose("pagerduty")
	run(t, b,
		chromedp.SendKeys(chromedp.CSS("#c-name"), "on-call"),
		chromedp.SendKeys(chromedp.CSS("#c-rk"), key),
		chromedp.Click(chromedp.CSS("#add-channel button[type=submit]")),
		chromedp.WaitVisible(chromedp.CSS("#channels")),
	)
	// #channels is on the page before the form is sent too: wait for the
	// stored channel rather than for the page.
	var chans []keepwatch.Channel
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		var err error
		chans, err = f.a.Store.Channels(ctx, f.alice)
		must(t, err)
		for _, c := range chans {
			if c.Type == keepwatch.ChannelPagerDuty && c.Name == "on-call" && c.Secret == key {
				return
			}
		}
	}
	t.Fatalf("no PagerDuty channel after the form: %+v", chans)
}
