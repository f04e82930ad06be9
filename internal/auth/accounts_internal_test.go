package auth

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"
)

func TestTOTPAcceptsOneStepOfDriftAndNothingElse(t *testing.T) {
	key, err := totp.Generate(totp.GenerateOpts{Issuer: "keepwatch", AccountName: "ann@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_800_000_015, 0)
	step := now.Unix() / 30
	for d, want := range map[time.Duration]int64{0: step, -30 * time.Second: step - 1, 30 * time.Second: step + 1, 90 * time.Second: 0, -90 * time.Second: 0} {
		code, _ := totp.GenerateCode(key.Secret(), now.Add(d))
		if got := totpStep(key.Secret(), code, now); got != want {
			t.Errorf("code from %v: step %d, want %d", d, got, want)
		}
	}
}

func TestRecoveryCodesAreReadAsPeopleTypeThem(t *testing.T) {
	code := newRecoveryCode()
	if len(code) != 19 || strings.Count(code, "-") != 3 {
		t.Fatalf("code %q", code)
	}
	want, ok := normalizeRecoveryCode(code)
	if !ok {
		t.Fatal("a fresh code does not read")
	}
	for _, typed := range []string{strings.ToUpper(code), strings.ReplaceAll(code, "-", " "), " " + strings.ReplaceAll(code, "-", "") + " "} {
		if got, ok := normalizeRecoveryCode(typed); !ok || got != want {
			t.Errorf("%q read as %q %v", typed, got, ok)
		}
	}
	if _, ok := normalizeRecoveryCode("123456"); ok {
		t.Error("a six-digit code read as a recovery code")
	}
}

func TestOutboundRequestsForAccountsReachOnlyPublicAddresses(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	req, _ := http.NewRequestWithContext(context.Background(), "GET", srv.URL+"/.well-known/openid-configuration", nil)
	resp, err := newAccounts(Config{}, slog.Default()).http.Do(req)
	if err == nil {
		resp.Body.Close()
		t.Fatal("a loopback address was reached")
	}
	if !strings.Contains(err.Error(), "not allowed") {
		t.Fatalf("error %v", err)
	}
}
