package agent

import (
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"keepwatch"
	"keepwatch/internal/respond"
)

// FuzzLocalAPIBodies feeds arbitrary bytes to the decoding and validation
// of the local API's request bodies: nothing may panic, refusals are
// client errors, and whatever is accepted is within the protocol's limits.
func FuzzLocalAPIBodies(f *testing.F) {
	for _, s := range []string{`{"events":[{"kind":"archive_move_failed","subject":"A1","at":"2026-11-25T09:30:00Z"}]}`,
		`{"conditions":[{"kind":"camera_unreachable","subject":"cam-1"}],"force":true}`, `{"conditions":[]}`, `{}`, ``, `null`,
		`{"events":[{"kind":"Bad Kind"}]}`, `{"conditions":[{"kind":"server_unavailable"}]}`, `{"consent":false}`} {
		f.Add([]byte(s))
	}
	now := time.Now()
	clientError := func(t *testing.T, err error) {
		if c := keepwatch.ErrorCode(err); err != nil && c != keepwatch.EINVALID && c != keepwatch.ETOOLARGE {
			t.Fatalf("refused with %q: %v", c, err)
		}
	}
	decode := func(body []byte, v any) error {
		r := httptest.NewRequest("POST", "/", strings.NewReader(string(body)))
		r.Header.Set("Content-Type", "application/json")
		return respond.DecodeJSON(httptest.NewRecorder(), r, maxLocalBody, v)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var ev eventsRequest
		if err := decode(body, &ev); err != nil {
			clientError(t, err)
		} else if err := validEvents(ev.Events, now); err != nil {
			clientError(t, err)
		} else {
			for _, e := range ev.Events {
				if !keepwatch.ValidKind(e.Kind) || !keepwatch.ValidText(e.Subject, keepwatch.MaxSubjectLen) {
					t.Fatalf("accepted an invalid event %+v", e)
				}
			}
		}
		var cr conditionsRequest
		if err := decode(body, &cr); err != nil {
			clientError(t, err)
		} else if cr.Conditions != nil {
			if err := validConditions(*cr.Conditions); err != nil {
				clientError(t, err)
			} else {
				for _, c := range *cr.Conditions {
					if !keepwatch.ValidKind(c.Kind) || c.Kind == keepwatch.KindServerUnavailable {
						t.Fatalf("accepted an invalid condition %+v", c)
					}
				}
			}
		}
	})
}
