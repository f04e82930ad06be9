package api

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"keepwatch"
)

// FuzzRequestBodies feeds arbitrary bytes to the decoding and validation
// of every JSON request body the API takes: nothing may panic, and
// anything refused is refused with a client error code.
func FuzzRequestBodies(f *testing.F) {
	for _, s := range []string{`{"slc":"M01-2345-6789"}`, `{"note":"on my way"}`, `{}`, ``, `[]`, `{"slc":1}`,
		`{"name":"pager","type":"webhook","target":"https://127.0.0.1:9/x","digest":true}`,
		`{"name":"errors","channel_id":1,"kinds":["storage_full"],"min_severity":"error","slcs":["A-1"],"min_duration_seconds":60,"repeat_seconds":600,"unacked_only":true}`,
		`{"note":"` + strings.Repeat("x", 2000) + `"}`, `{"a":` + strings.Repeat("[", 5000) + `}`} {
		f.Add([]byte(s))
	}
	clientError := func(t *testing.T, err error) {
		if err == nil {
			return
		}
		switch keepwatch.ErrorCode(err) {
		case keepwatch.EINVALID, keepwatch.ETOOLARGE:
		default:
			t.Fatalf("refused with %q: %v", keepwatch.ErrorCode(err), err)
		}
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req := func() (*httptest.ResponseRecorder, *http.Request) {
			r := httptest.NewRequest("POST", "/", strings.NewReader(string(body)))
			r.Header.Set("Content-Type", "application/json")
			return httptest.NewRecorder(), r
		}
		w, r := req()
		_, err := readNote(w, r)
		clientError(t, err)

		w, r = req()
		var reg struct {
			SLC string `json:"slc"`
		}
		if err := decode(w, r, &reg); err == nil {
			_, err = keepwatch.NormalizeSLC(reg.SLC)
			clientError(t, err)
		} else {
			clientError(t, err)
		}

		w, r = req()
		var ch keepwatch.ChannelSpec
		if err := decode(w, r, &ch); err == nil {
			_, err := ch.Channel()
			clientError(t, err)
		} else {
			clientError(t, err)
		}

		w, r = req()
		var rr ruleRequest
		if err := decode(w, r, &rr); err == nil {
			rule, err := ruleFromRequest(rr)
			clientError(t, err)
			if err == nil && (len(rule.Kinds) > 50 || rule.Name == "") {
				t.Fatalf("accepted an invalid rule: %+v", rule)
			}
		} else {
			clientError(t, err)
		}
	})
}
