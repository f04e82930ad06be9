package web

import (
	"fmt"
	"html/template"
	"math"
	"strconv"
	"time"

	"keepwatch"
)

// counterOrder is the order of the overview's counters, with their
// labels.
var counterOrder = []keepwatch.Status{
	keepwatch.StatusError, keepwatch.StatusWarning, keepwatch.StatusUnavailable, keepwatch.StatusSiteUnreachable,
	keepwatch.StatusMaintenance, keepwatch.StatusPaused, keepwatch.StatusConsentWithdrawn, keepwatch.StatusNeverReported, keepwatch.StatusOK,
}

var counterLabels = map[keepwatch.Status]string{
	keepwatch.StatusError:            "Error",
	keepwatch.StatusWarning:          "Warning",
	keepwatch.StatusUnavailable:      "Unavailable",
	keepwatch.StatusSiteUnreachable:  "Site unreachable",
	keepwatch.StatusMaintenance:      "Maintenance",
	keepwatch.StatusPaused:           "Paused",
	keepwatch.StatusConsentWithdrawn: "Consent withdrawn",
	keepwatch.StatusNeverReported:    "Never reported",
	keepwatch.StatusOK:               "OK",
}

var stateLabels = map[string]string{
	string(keepwatch.StatusError):            "Error",
	string(keepwatch.StatusWarning):          "Warning",
	string(keepwatch.StatusUnavailable):      "Server unavailable",
	string(keepwatch.StatusSiteUnreachable):  "Site unreachable (Internet?)",
	string(keepwatch.StatusMaintenance):      "Maintenance",
	string(keepwatch.StatusPaused):           "Monitoring paused — Care Plus ended",
	string(keepwatch.StatusConsentWithdrawn): "Consent withdrawn",
	string(keepwatch.StatusNeverReported):    "Never reported",
	string(keepwatch.StatusOK):               "OK",
	string(keepwatch.ServerPending):          "Never reported",
}

// kindLabel names a condition kind for people.
func kindLabel(kind string) string { return keepwatch.KindLabel(kind) }

// ago says how long before now t was, the way people say it.
func ago(now, t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := now.Sub(t)
	if d < 0 {
		return "in " + span(-d)
	}
	if d < 10*time.Second {
		return "just now"
	}
	return span(d) + " ago"
}

// span is a duration rounded to its largest unit ("3 min", "2 h 5 min").
func span(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%d s", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%d min", int(d.Minutes()))
	case d < 24*time.Hour:
		h, m := int(d.Hours()), int(d.Minutes())%60
		if m == 0 || h >= 10 {
			return fmt.Sprintf("%d h", h)
		}
		return fmt.Sprintf("%d h %d min", h, m)
	case d < 60*24*time.Hour:
		return fmt.Sprintf("%d d", int(d.Hours()/24))
	case d < 730*24*time.Hour:
		return fmt.Sprintf("%d mo", int(d.Hours()/24/30))
	}
	return fmt.Sprintf("%d y", int(d.Hours()/24/365))
}

// moment is a time shown exactly, with how long ago beside it.
type moment struct {
	T, Now time.Time
}

func templateFuncs() template.FuncMap {
	return template.FuncMap{
		"ago":        ago,
		"span":       span,
		"kindLabel":  kindLabel,
		"stateLabel": func(s string) string { return stateLabels[s] },
		// stamp is the one way a moment is written: 2026-11-30 14:05 UTC.
		"stamp": keepwatch.FormatTime,
		// ts is stamp as a <time>, never broken across lines.
		"ts": func(t time.Time) template.HTML {
			if t.IsZero() {
				return ""
			}
			return template.HTML(`<time class="at" datetime="` + t.UTC().Format(time.RFC3339) + `">` + keepwatch.FormatTime(t) + `</time>`)
		},
		// at shows a moment exactly, and how long ago: {{template "at" (at $now .T)}}.
		"at":  func(now, t time.Time) moment { return moment{T: t, Now: now} },
		"iso": func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
		"deref": func(t *time.Time) time.Time {
			if t == nil {
				return time.Time{}
			}
			return *t
		},
		"pct": keepwatch.FormatPercent,
		// person names who did something: an e-mail, "API token NAME".
		"person": keepwatch.ActorName,
		"allows": func(s *keepwatch.Session, role string) bool {
			return s != nil && s.Role.Allows(keepwatch.Role(role))
		},
		"interval": func(d keepwatch.Duration) string {
			if d <= 0 {
				return "—"
			}
			return span(time.Duration(d))
		},
		"add": func(a, b int) int { return a + b },
		// skew describes a server clock's offset ("1 h ahead"), or "".
		"skew": func(d keepwatch.Duration) string {
			off := time.Duration(d)
			switch {
			case off == 0:
				return ""
			case off > 0:
				return span(off) + " ahead"
			}
			return span(-off) + " behind"
		},
		"more": func(cs []keepwatch.Condition, n int) int { return max(0, len(cs)-n) },
		"first": func(cs []keepwatch.Condition, n int) []keepwatch.Condition {
			return cs[:min(n, len(cs))]
		},
		"daysUntil": func(today, d keepwatch.Date) int {
			return int(d.Time().Sub(today.Time()).Hours() / 24)
		},
		"countLabel":  countLabel,
		"serverState": func(s keepwatch.Server) string { return string(keepwatch.ServerStatus(s)) },
		"worst":       func(s keepwatch.Server) *keepwatch.Condition { return keepwatch.WorstCondition(s.Conditions) },
		"str":         func(v any) string { return fmt.Sprint(v) },
		"float":       func(n int) float64 { return float64(n) },
		"deref1": func(f *float64) float64 {
			if f == nil {
				return 0
			}
			return *f
		},
		// days writes a number of days to one decimal: 10.7, 19.
		"days": func(d float64) string {
			if d >= 10 { // whole days from 10 on
				return strconv.FormatFloat(math.Round(d), 'f', -1, 64)
			}
			return strconv.FormatFloat(math.Round(d*10)/10, 'f', -1, 64)
		},
		"bytes": keepwatch.ByteText,
		// dict passes several values to a template: dict "Row" . "Page" $.
		"dict": func(kv ...any) map[string]any {
			m := make(map[string]any, len(kv)/2)
			for i := 0; i+1 < len(kv); i += 2 {
				m[fmt.Sprint(kv[i])] = kv[i+1]
			}
			return m
		},
	}
}

// countLabel explains an incident's count: how many servers a site
// outage stands for, how often an event happened, how often a condition
// came back. "" for once.
func countLabel(n keepwatch.Incident) string {
	switch {
	case n.Kind == keepwatch.KindSiteUnreachable:
		return fmt.Sprintf("%d servers silent together", n.Count)
	case n.Count <= 1:
		return ""
	case n.Event:
		return fmt.Sprintf("happened %d times", n.Count)
	}
	if n.Count == 2 {
		return "came back once"
	}
	return fmt.Sprintf("came back %d times", n.Count-1)
}
