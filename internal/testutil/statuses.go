package testutil

import (
	"crypto/tls"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strconv"
	"testing"
)

// rowPattern finds an overview row's status and SLC in the dashboard's HTML.
var rowPattern = regexp.MustCompile(`<tr class="r-([a-z_]+)" data-slc="([^"]+)"`)

// StatusesAgree reads every installation's status from
// GET /api/v1/installations?filter=all with token and from the
// dashboard's overview ("Show all") signed in as email/password, and fails
// the test where they differ. It also checks that the API's counts cover
// every display status. A fleet that keeps reporting may change a status
// between two reads: the API is read before and after the dashboard, and
// the comparison retried until both API reads agree. It returns how many
// installations it compared.
func StatusesAgree(t testing.TB, base, token, email, password string) int {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	jar, _ := cookiejar.New(nil)
	client.Jar = jar
	resp, err := client.PostForm(base+"/login", url.Values{"email": {email}, "password": {password}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for attempt := 0; ; attempt++ {
		before := apiStatuses(t, client, base, token)
		dashboard := dashboardStatuses(t, client, base, len(before))
		after := apiStatuses(t, client, base, token)
		if !maps.Equal(before, after) && attempt < 20 {
			continue
		}
		if len(dashboard) != len(after) {
			t.Errorf("the dashboard shows %d installations, the API %d", len(dashboard), len(after))
		}
		for slc, st := range after {
			if got := dashboard[slc]; got != st {
				t.Errorf("%s: the API says %q, the dashboard %q", slc, st, got)
			}
		}
		return len(after)
	}
}

// apiStatuses reads the API's status of every installation.
func apiStatuses(t testing.TB, client *http.Client, base, token string) map[string]string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, base+"/api/v1/installations?filter=all", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var list struct {
		Installations []struct {
			SLC    string `json:"slc"`
			Status string `json:"status"`
		} `json:"installations"`
		Counts map[string]int `json:"counts"`
	}
	err = json.NewDecoder(resp.Body).Decode(&list)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("API list: %d %v", resp.StatusCode, err)
	}
	for _, s := range []string{"error", "warning", "unavailable", "site_unreachable", "maintenance", "paused", "consent_withdrawn", "never_reported", "ok"} {
		if _, ok := list.Counts[s]; !ok {
			t.Errorf("the API's counts lack %s: %v", s, list.Counts)
		}
	}
	out := map[string]string{}
	for _, in := range list.Installations {
		out[in.SLC] = in.Status
	}
	return out
}

// dashboardStatuses reads the status of every row of the dashboard's
// overview, page by page, until it has want rows or a page adds none.
func dashboardStatuses(t testing.TB, client *http.Client, base string, want int) map[string]string {
	t.Helper()
	dashboard := map[string]string{}
	for page := 1; ; page++ {
		resp, err := client.Get(base + "/?filter=all&page=" + strconv.Itoa(page))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("dashboard overview: %d", resp.StatusCode)
		}
		before := len(dashboard)
		for _, m := range rowPattern.FindAllStringSubmatch(string(b), -1) {
			dashboard[m[2]] = m[1]
		}
		if len(dashboard) == before || len(dashboard) >= want {
			return dashboard
		}
	}
}
