package check

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
)

const (
	rulesFile     = "../prometheus/keepwatch-rules.yml"
	dashboardFile = "../grafana/keepwatch.json"
)

// external are metrics Prometheus itself (up) or the blackbox exporter
// (probe_success) provide, with the labels the rules may use.
var external = map[string][]string{
	"up":            {"job", "instance"},
	"probe_success": {"job", "instance"},
}

// grafanaVars are what Grafana substitutes before a query reaches
// Prometheus, with values that keep the query's meaning.
var grafanaVars = strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$__range", "1h", "$job", "keepwatch", "$instance", ".*")

func promParser() parser.Parser { return parser.NewParser(parser.Options{}) }

func TestAlertRulesLoadAsPrometheusLoadsThem(t *testing.T) {
	groups, errs := rulefmt.ParseFile(rulesFile, false, model.UTF8Validation, promParser(), slog.New(slog.DiscardHandler))
	for _, err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		return
	}
	metrics := scrape(t)
	names := map[string]bool{}
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				t.Errorf("rule %q is not an alert", r.Record)
				continue
			}
			if names[r.Alert] {
				t.Errorf("two alerts named %s", r.Alert)
			}
			names[r.Alert] = true
			if sev := r.Labels["severity"]; sev != "page" && sev != "warning" {
				t.Errorf("%s: severity %q, want page or warning", r.Alert, sev)
			}
			if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("%s: summary and description are required", r.Alert)
			}
			checkExpr(t, r.Alert, r.Expr, metrics)
		}
	}
	// What the operations guide promises to page on.
	for _, a := range []string{"KeepwatchDown", "KeepwatchNotReady", "KeepwatchSweeperLagging", "KeepwatchNotificationsFailing", "KeepwatchNotificationQueueGrowing", "KeepwatchRefusalSpike", "KeepwatchDatabaseRefusingReports"} {
		if !names[a] {
			t.Errorf("no alert %s", a)
		}
	}
}

func TestRulesWithAnErrorAreRefused(t *testing.T) {
	// The check is only worth something if it can fail.
	bad := []byte("groups:\n- name: x\n  rules:\n  - alert: Broken\n    expr: rate(keepwatch_reports_accepted_total[5m] > 1\n")
	if _, errs := rulefmt.Parse(bad, false, model.UTF8Validation, promParser(), slog.New(slog.DiscardHandler)); len(errs) == 0 {
		t.Error("a rule with a broken expression loads")
	}
	var out strings.Builder
	metrics := map[string]metric{"keepwatch_servers": {labels: map[string]bool{"state": true}, values: map[string]map[string]bool{"state": {"ok": true}}}}
	for expr, want := range map[string]string{
		`keepwatch_serverz > 0`:                     "not exported",
		`keepwatch_servers{status="ok"} > 0`:        "label",
		`keepwatch_servers{state="broken"} > 0`:     "value",
		`sum(rate(keepwatch_servers[5m])) by (job)`: "",
	} {
		problems := exprProblems(expr, metrics)
		got := strings.Join(problems, "; ")
		if (want == "") != (got == "") || !strings.Contains(got, want) {
			fmt.Fprintf(&out, "%s: %q, want %q\n", expr, got, want)
		}
	}
	if out.Len() > 0 {
		t.Error(out.String())
	}
}

// dashboard is the part of Grafana's dashboard model checked here.
type dashboard struct {
	UID           string  `json:"uid"`
	Title         string  `json:"title"`
	SchemaVersion int     `json:"schemaVersion"`
	Panels        []panel `json:"panels"`
	Templating    struct {
		List []struct {
			Name  string `json:"name"`
			Type  string `json:"type"`
			Query any    `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID         int    `json:"id"`
	Type       string `json:"type"`
	Title      string `json:"title"`
	Datasource *struct {
		Type string `json:"type"`
		UID  string `json:"uid"`
	} `json:"datasource"`
	GridPos *struct{ H, W, X, Y int } `json:"gridPos"`
	Targets []struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	} `json:"targets"`
	Panels []panel `json:"panels"`
}

func TestGrafanaDashboardQueriesParseAndUseKeepwatchMetrics(t *testing.T) {
	raw, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("%s is not JSON: %v", dashboardFile, err)
	}
	if d.SchemaVersion < 36 || d.UID == "" || d.Title == "" {
		t.Errorf("schemaVersion %d, uid %q, title %q", d.SchemaVersion, d.UID, d.Title)
	}
	vars := map[string]bool{}
	for _, v := range d.Templating.List {
		vars[v.Name] = true
		if q, ok := v.Query.(map[string]any); ok {
			if s, _ := q["query"].(string); strings.HasPrefix(s, "label_values(") {
				// label_values(selector, label): the selector is PromQL.
				inner := strings.TrimSuffix(strings.TrimPrefix(s, "label_values("), ")")
				sel := inner[:strings.LastIndex(inner, ",")]
				if _, err := promParser().ParseExpr(grafanaVars.Replace(sel)); err != nil {
					t.Errorf("variable %s: %q: %v", v.Name, sel, err)
				}
			}
		}
	}
	for _, v := range []string{"datasource", "job", "instance"} {
		if !vars[v] {
			t.Errorf("no template variable %s", v)
		}
	}
	metrics := scrape(t)
	ids := map[int]bool{}
	var queries int
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			if ids[p.ID] {
				t.Errorf("panel id %d used twice", p.ID)
			}
			ids[p.ID] = true
			if p.GridPos == nil || p.GridPos.W == 0 || p.GridPos.H == 0 {
				t.Errorf("panel %q has no position", p.Title)
			}
			walk(p.Panels)
			if p.Type == "row" {
				continue
			}
			if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
				t.Errorf("panel %q does not use the datasource variable", p.Title)
			}
			if len(p.Targets) == 0 {
				t.Errorf("panel %q has no query", p.Title)
			}
			for _, tg := range p.Targets {
				queries++
				if strings.Contains(grafanaVars.Replace(tg.Expr), "$") {
					t.Errorf("panel %q: unknown variable in %q", p.Title, tg.Expr)
				}
				checkExpr(t, fmt.Sprintf("panel %q %s", p.Title, tg.RefID), grafanaVars.Replace(tg.Expr), metrics)
			}
		}
	}
	walk(d.Panels)
	if queries < 10 {
		t.Errorf("%d queries: the dashboard is nearly empty", queries)
	}
	// Every keepwatch metric has a panel.
	used := map[string]bool{}
	walkUsed(d.Panels, used)
	for name := range metrics {
		if !used[name] {
			t.Errorf("no panel shows %s", name)
		}
	}
}

func walkUsed(ps []panel, used map[string]bool) {
	for _, p := range ps {
		walkUsed(p.Panels, used)
		for _, tg := range p.Targets {
			expr, err := promParser().ParseExpr(grafanaVars.Replace(tg.Expr))
			if err != nil {
				continue
			}
			for _, s := range selectors(expr) {
				used[s.name] = true
			}
		}
	}
}

func checkExpr(t *testing.T, what, expr string, metrics map[string]metric) {
	t.Helper()
	for _, p := range exprProblems(expr, metrics) {
		t.Errorf("%s: %s", what, p)
	}
}

type selector struct {
	name     string
	matchers []*labels.Matcher
}

func selectors(expr parser.Expr) []selector {
	var out []selector
	parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			s := selector{name: vs.Name}
			for _, m := range vs.LabelMatchers {
				if m.Name == labels.MetricName {
					s.name = m.Value
					continue
				}
				s.matchers = append(s.matchers, m)
			}
			out = append(out, s)
		}
		return nil
	})
	return out
}

// exprProblems parses expr and checks every series it selects: the metric
// is exported by keepwatch (or is one of external), the labels it matches
// on exist, and a label value it requires is one keepwatch exports.
func exprProblems(expr string, metrics map[string]metric) []string {
	e, err := promParser().ParseExpr(expr)
	if err != nil {
		return []string{fmt.Sprintf("%q does not parse: %v", expr, err)}
	}
	var problems []string
	for _, s := range selectors(e) {
		if ls, ok := external[s.name]; ok {
			for _, m := range s.matchers {
				if !contains(ls, m.Name) {
					problems = append(problems, fmt.Sprintf("%s has no label %s", s.name, m.Name))
				}
			}
			continue
		}
		m, ok := metrics[s.name]
		if !ok {
			problems = append(problems, fmt.Sprintf("%s is not exported by keepwatch", s.name))
			continue
		}
		for _, mt := range s.matchers {
			if mt.Name == "job" || mt.Name == "instance" {
				continue
			}
			if !m.labels[mt.Name] {
				problems = append(problems, fmt.Sprintf("%s has no label %s (it has %v)", s.name, mt.Name, keys(m.labels)))
				continue
			}
			known := m.values[mt.Name]
			if mt.Type == labels.MatchEqual && len(known) > 0 && !known[mt.Value] {
				problems = append(problems, fmt.Sprintf("%s{%s} never has the value %q (known: %v)", s.name, mt.Name, mt.Value, keys(known)))
			}
		}
	}
	return problems
}

// metric is what keepwatch exports of one family: its label names and the
// values each label can take.
type metric struct {
	labels map[string]bool
	values map[string]map[string]bool
}

var (
	scrapeOnce sync.Once
	scraped    map[string]metric
	scrapeErr  error
)

// scrape builds keepwatch from this repository, serves it on a fresh
// SQLite directory, makes it count a little of everything (an enrollment,
// a heartbeat, a status report, refused reports), and reads /metrics.
// Label values that cannot all be produced here come from keepwatch's
// sources: the error codes (errors.go) and the outbox states.
func scrape(t *testing.T) map[string]metric {
	t.Helper()
	scrapeOnce.Do(func() { scraped, scrapeErr = runAndScrape() })
	if scrapeErr != nil {
		t.Fatal(scrapeErr)
	}
	return scraped
}

func runAndScrape() (map[string]metric, error) {
	tmp, err := os.MkdirTemp("", "keepwatch-deploy-check-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	repo, err := filepath.Abs("../..")
	if err != nil {
		return nil, err
	}
	bin := filepath.Join(tmp, "keepwatch")
	build := exec.Command("go", "build", "-o", bin, "./cmd/keepwatch")
	build.Dir = repo
	if out, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("build keepwatch: %v\n%s", err, out)
	}
	data := filepath.Join(tmp, "data")
	kw := func(stdin string, args ...string) (string, error) {
		cmd := exec.Command(bin, args...)
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.Output()
		if ee, ok := err.(*exec.ExitError); ok {
			return "", fmt.Errorf("keepwatch %s: %v\n%s", strings.Join(args, " "), err, ee.Stderr)
		}
		return strings.TrimSpace(string(out)), err
	}
	if _, err := kw("", "admin", "--data", data, "--create", "integrator", "add", "Alice Security", "--owner-email", "owner@alice.example"); err != nil {
		return nil, err
	}
	key, err := kw("", "admin", "--data", data, "license", "add", "--slc", "MET-0001", "--customer", "Harbor Logistics",
		"--product", "XProtect Corporate 2016", "--cameras", "8", "--care-plus-until", "2099-01-01")
	if err != nil {
		return nil, err
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	serve := exec.CommandContext(ctx, bin, "serve", "--insecure-http", "--addr", addr, "--data", data)
	var logs strings.Builder
	serve.Stderr = &logs
	serve.Cancel = func() error { return serve.Process.Signal(os.Interrupt) }
	if err := serve.Start(); err != nil {
		cancel()
		return nil, err
	}
	defer func() {
		cancel()
		serve.Wait()
	}()
	base := "http://" + addr
	get := func(path string) (int, string, error) {
		resp, err := http.Get(base + path)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), err
	}
	for deadline := time.Now().Add(30 * time.Second); ; {
		if code, _, _ := get("/readyz"); code == 200 {
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("keepwatch serve is not ready within 30s:\n%s", logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}

	// An agent enrolls and reports; garbage is refused.
	state := filepath.Join(tmp, "agent")
	if _, err := kw("", "agent", "enroll", "--server", base, "--slc", "MET-0001", "--key", key, "--name", "RS-01", "--state", state, "--consent"); err != nil {
		return nil, err
	}
	if _, err := kw("", "agent", "send", "--state", state, "--heartbeat"); err != nil {
		return nil, err
	}
	if _, err := kw("", "agent", "send", "--state", state, "--condition", "storage_full:E:"); err != nil {
		return nil, err
	}
	for i := 0; i < 2; i++ {
		resp, err := http.Post(base+"/ingest/v1/report", "application/octet-stream", strings.NewReader("not an envelope"))
		if err != nil {
			return nil, err
		}
		resp.Body.Close()
	}

	code, body, err := get("/metrics")
	if err != nil || code != 200 {
		return nil, fmt.Errorf("GET /metrics: %d %v", code, err)
	}
	metrics := parseExposition(body)
	if len(metrics) == 0 {
		return nil, fmt.Errorf("no keepwatch metrics in:\n%s", body)
	}
	// Values keepwatch's sources define but one short run cannot all
	// produce.
	codes, err := errorCodes(filepath.Join(repo, "errors.go"))
	if err != nil {
		return nil, err
	}
	addValues(metrics, "keepwatch_reports_refused_total", "code", codes...)
	addValues(metrics, "keepwatch_reports_accepted_total", "type", "heartbeat", "status", "enroll")
	addValues(metrics, "keepwatch_notifications", "state", "pending", "sent", "failed", "suppressed", "cancelled")
	return metrics, nil
}

var sampleLine = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? \S+$`)
var labelPair = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"`)

// parseExposition reads the families (# TYPE) and their series.
func parseExposition(body string) map[string]metric {
	out := map[string]metric{}
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		if f := strings.Fields(line); len(f) == 4 && f[0] == "#" && f[1] == "TYPE" {
			out[f[2]] = metric{labels: map[string]bool{}, values: map[string]map[string]bool{}}
			continue
		}
		m := sampleLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		if _, ok := out[m[1]]; !ok {
			continue
		}
		for _, p := range labelPair.FindAllStringSubmatch(m[2], -1) {
			addValues(out, m[1], p[1], p[2])
		}
	}
	return out
}

func addValues(metrics map[string]metric, name, label string, values ...string) {
	m, ok := metrics[name]
	if !ok {
		return
	}
	m.labels[label] = true
	if m.values[label] == nil {
		m.values[label] = map[string]bool{}
	}
	for _, v := range values {
		m.values[label][v] = true
	}
}

// errorCodes reads keepwatch's error codes from the root package.
func errorCodes(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var codes []string
	for _, m := range regexp.MustCompile(`(?m)^\s+E[A-Z]+\s+=\s+"([a-z_]+)"`).FindAllStringSubmatch(string(b), -1) {
		codes = append(codes, m[1])
	}
	if len(codes) < 5 {
		return nil, fmt.Errorf("%s: found only %v", path, codes)
	}
	return codes, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
