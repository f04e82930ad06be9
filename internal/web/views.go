package web

import (
	"fmt"
	"html/template"
	"math"
	"strings"
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

var kindLabels = map[string]string{
	keepwatch.KindCameraUnreachable:      "Camera unreachable",
	keepwatch.KindStorageFull:            "Storage full",
	keepwatch.KindStorageLow:             "Storage low",
	keepwatch.KindMediaDBWriteFailed:     "Media database write failed",
	keepwatch.KindLicenseExceeded:        "Licence exceeded",
	keepwatch.KindServerUnavailable:      "Server unavailable",
	keepwatch.KindArchiveDeleteFailed:    "Archive delete failed",
	keepwatch.KindFileDeleteFailed:       "File delete failed",
	keepwatch.KindArchiveFatalError:      "Archive fatal error",
	keepwatch.KindArchiveOperationFailed: "Archive operation failed",
	keepwatch.KindArchiveMoveFailed:      "Archive move failed",
	keepwatch.KindSiteUnreachable:        "Site unreachable (Internet?)",
	"consent_withdrawn":                  "Consent withdrawn",
}

// kindLabel names a condition kind for people; a kind from a newer agent
// is shown from its own name.
func kindLabel(kind string) string {
	if l, ok := kindLabels[kind]; ok {
		return l
	}
	s := strings.ReplaceAll(kind, "_", " ")
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

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

func templateFuncs() template.FuncMap {
	return template.FuncMap{
		"ago":        ago,
		"span":       span,
		"kindLabel":  kindLabel,
		"stateLabel": func(s string) string { return stateLabels[s] },
		"stamp": func(t time.Time) string {
			if t.IsZero() {
				return ""
			}
			return t.UTC().Format("2006-01-02 15:04 UTC")
		},
		"iso": func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
		"deref": func(t *time.Time) time.Time {
			if t == nil {
				return time.Time{}
			}
			return *t
		},
		"pct": func(f float64) string {
			if f >= 99.995 {
				return "100 %"
			}
			return fmt.Sprintf("%.2f %%", math.Floor(f*100)/100)
		},
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
	}
}
