package notify

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/textproto"
	"strings"
	"time"

	"keepwatch"
	"keepwatch/internal/mail"
)

// SMTPConfig is the mail relay keepwatch sends through; internal/mail
// speaks SMTP for notifications and account mail alike.
type SMTPConfig = mail.Config

// ParseSMTPURL reads smtp://user:pass@host:587?from=alerts@example.com
// (STARTTLS required), smtps://… (implicit TLS) or
// smtp://host:25?security=none.
func ParseSMTPURL(s string) (SMTPConfig, error) { return mail.ParseURL(s) }

func (n *Notifier) sendEmail(ctx context.Context, ch keepwatch.Channel, m Message) error {
	c := n.cfg.SMTP
	if c.Addr == "" {
		return errors.New("e-mail is not configured on this keepwatch server (serve --smtp-url)")
	}
	msg, err := buildMail(c.From, ch.Target, m, n.cfg.Now())
	if err != nil {
		return err
	}
	return mail.Send(ctx, c, ch.Target, msg)
}

// buildMail renders a multipart/alternative message (text and HTML).
func buildMail(from, to string, m Message, now time.Time) ([]byte, error) {
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	for _, part := range []struct{ ctype, content string }{{"text/plain; charset=utf-8", m.Text}, {"text/html; charset=utf-8", m.HTML}} {
		w, err := mw.CreatePart(textproto.MIMEHeader{"Content-Type": {part.ctype}, "Content-Transfer-Encoding": {"quoted-printable"}})
		if err != nil {
			return nil, err
		}
		qp := quotedprintable.NewWriter(w)
		qp.Write([]byte(part.content))
		qp.Close()
	}
	mw.Close()
	var b bytes.Buffer
	host := "keepwatch"
	if at := strings.LastIndexByte(from, '@'); at >= 0 {
		host = from[at+1:]
	}
	rnd := make([]byte, 6)
	rand.Read(rnd)
	hdr := []string{
		"From: keepwatch <" + from + ">",
		"To: " + to,
		"Subject: " + mime.QEncoding.Encode("utf-8", m.Subject),
		"Date: " + now.UTC().Format(time.RFC1123Z),
		fmt.Sprintf("Message-ID: <notification-%d.%s@%s>", m.ID, hex.EncodeToString(rnd), host),
		fmt.Sprintf("X-Keepwatch-Delivery: %d", m.ID),
		"MIME-Version: 1.0",
		"Content-Type: multipart/alternative; boundary=" + mw.Boundary(),
		"Auto-Submitted: auto-generated",
	}
	b.WriteString(strings.Join(hdr, "\r\n"))
	b.WriteString("\r\n\r\n")
	b.Write(body.Bytes())
	return b.Bytes(), nil
}
