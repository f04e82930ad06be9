package mail_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"keepwatch/internal/mail"
	"keepwatch/internal/mail/mailtest"
)

func TestSendDeliversTextAndHTMLToARealSMTPServer(t *testing.T) {
	srv := mailtest.NewServer(t)
	c := srv.Config()
	msg, err := mail.Build(c.From, mail.Message{To: "ann@example.com", Subject: "Grüße from keepwatch", Text: "a line that is long enough to be wrapped by quoted-printable encoding, with ünïcödé = signs",
		HTML: "<p>hello</p>", Kind: "test", Headers: map[string]string{"Auto-Submitted": "auto-generated"}}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := mail.Send(context.Background(), c, "ann@example.com", msg); err != nil {
		t.Fatal(err)
	}
	m, ok := srv.Wait("ann@example.com", 0, 5*time.Second)
	if !ok {
		t.Fatal("no mail arrived")
	}
	if m.Subject != "Grüße from keepwatch" || !strings.Contains(m.Text, "ünïcödé = signs") || !strings.Contains(string(m.Raw), "Auto-Submitted: auto-generated") {
		t.Fatalf("mail: subject %q, text %q", m.Subject, m.Text)
	}
}

func TestSendRefusesClearTextWhenSTARTTLSIsRequired(t *testing.T) {
	srv := mailtest.NewServer(t)
	c := srv.Config()
	c.Security = "starttls"
	if err := mail.Send(context.Background(), c, "ann@example.com", []byte("Subject: x\r\n\r\nx")); err == nil || !strings.Contains(err.Error(), "STARTTLS") {
		t.Fatalf("sent in clear: %v", err)
	}
	if len(srv.Messages()) != 0 {
		t.Fatal("a message went out in clear")
	}
}

func TestBuildRefusesHeaderInjection(t *testing.T) {
	if _, err := mail.Build("a@example.com", mail.Message{To: "b@example.com", Headers: map[string]string{"X-A": "b\r\nBcc: c@example.com"}}, time.Now()); err == nil {
		t.Fatal("a header with a line break was accepted")
	}
}
