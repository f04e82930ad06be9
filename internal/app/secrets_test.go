package app_test

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"

	"keepwatch"
	"keepwatch/internal/agent"
	"keepwatch/internal/app"
	"keepwatch/internal/secret"
)

// syncBuffer is a log sink safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestSecretsNeverReachTheLogs(t *testing.T) {
	var logs syncBuffer
	a, err := app.New(ctx, app.Config{DataDir: t.TempDir(), Addr: "127.0.0.1:0", InsecureHTTP: true,
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer a.Shutdown(ctx)
	in, _ := a.Store.CreateIntegrator(ctx, "Alice")
	token := secret.New("kw_")
	a.Store.CreateToken(ctx, in.ID, "t", keepwatch.RoleOwner, secret.Hash(token))
	key := secret.New("kwe_")
	until, _ := keepwatch.ParseDate("2099-01-01")
	a.Store.CreateInstallation(ctx, keepwatch.Installation{SLC: "LOG-0001", Customer: "c", Product: "p", CarePlusUntil: until}, secret.Hash(key))
	st, err := agent.Enroll(ctx, agent.EnrollOptions{Server: a.URL(), SLC: "LOG-0001", Key: key, Name: "RS-01", Consent: true})
	if err != nil {
		t.Fatal(err)
	}
	c, _ := agent.NewClient(a.URL(), "")
	snd := &agent.Sender{State: st, Client: c}
	snd.Send(ctx, nil)
	// Failures log at debug level: a wrong key, a wrong token, a replay.
	agent.Enroll(ctx, agent.EnrollOptions{Server: a.URL(), SLC: "LOG-0001", Key: key + "x", Name: "RS-02", Consent: true})
	for _, tok := range []string{token, token + "x"} {
		req, _ := http.NewRequest("GET", a.URL()+"/api/v1/installations", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}
	snd.State.Seq--
	snd.Send(ctx, nil)
	a.Shutdown(ctx)
	out := logs.String()
	if !strings.Contains(out, "server enrolled") {
		t.Fatalf("logging was not captured:\n%s", out)
	}
	for name, s := range map[string]string{
		"API token": token, "enrollment key": key, "report key (hex)": hex.EncodeToString(st.Key),
		"report key (base64)": base64.StdEncoding.EncodeToString(st.Key),
	} {
		if strings.Contains(out, s) {
			t.Errorf("the %s appears in the logs", name)
		}
	}
}
