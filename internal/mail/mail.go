// Package mail sends keepwatch's e-mail through the operator's SMTP relay:
// notifications and account mail (password reset links) alike. It speaks
// SMTP with net/smtp, refuses to send in clear unless told the relay is
// trusted, and renders plain-text-and-HTML messages.
package mail

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/smtp"
	"net/textproto"
	"net/url"
	"strings"
	"time"
)

// Config is the mail relay keepwatch sends through.
type Config struct {
	Addr     string // host:port; empty disables e-mail
	Username string
	Password string
	From     string
	// Security is "starttls" (default: required, refuse to send in clear),
	// "tls" (implicit TLS, port 465) or "none" (trusted relays on loopback).
	Security  string
	TLSConfig *tls.Config // nil: system roots, ServerName from Addr
}

// Enabled reports whether a relay is configured.
func (c Config) Enabled() bool { return c.Addr != "" }

// ParseURL reads smtp://user:pass@host:587?from=alerts@example.com
// (STARTTLS required), smtps://… (implicit TLS) or
// smtp://host:25?security=none.
func ParseURL(s string) (Config, error) {
	var c Config
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return c, fmt.Errorf("SMTP URL %q: want smtp://user:pass@host:port?from=address", s)
	}
	switch u.Scheme {
	case "smtp":
		c.Security = "starttls"
	case "smtps":
		c.Security = "tls"
	default:
		return c, fmt.Errorf("SMTP URL scheme must be smtp or smtps")
	}
	if sec := u.Query().Get("security"); sec != "" {
		if sec != "starttls" && sec != "tls" && sec != "none" {
			return c, fmt.Errorf("security must be starttls, tls or none")
		}
		c.Security = sec
	}
	c.Addr = u.Host
	if u.Port() == "" {
		c.Addr = net.JoinHostPort(u.Hostname(), map[string]string{"starttls": "587", "tls": "465", "none": "25"}[c.Security])
	}
	if u.User != nil {
		c.Username = u.User.Username()
		c.Password, _ = u.User.Password()
	}
	c.From = u.Query().Get("from")
	if _, err := mail.ParseAddress(c.From); err != nil {
		return c, fmt.Errorf("SMTP URL needs ?from=a valid sender address")
	}
	return c, nil
}

// Message is one e-mail to one recipient.
type Message struct {
	To      string
	Subject string
	Text    string
	HTML    string // optional; sent as the alternative to Text
	// Kind names the message in its Message-ID ("password-reset").
	Kind string
	// Headers are added as they are (e.g. Auto-Submitted).
	Headers map[string]string
}

// Build renders m as an RFC 5322 message from from.
func Build(from string, m Message, now time.Time) ([]byte, error) {
	var body bytes.Buffer
	ctype := "text/plain; charset=utf-8"
	if m.HTML == "" {
		qp := quotedprintable.NewWriter(&body)
		qp.Write([]byte(m.Text))
		qp.Close()
	} else {
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
		ctype = "multipart/alternative; boundary=" + mw.Boundary()
	}
	host := "keepwatch"
	if at := strings.LastIndexByte(from, '@'); at >= 0 {
		host = from[at+1:]
	}
	rnd := make([]byte, 8)
	rand.Read(rnd)
	kind := m.Kind
	if kind == "" {
		kind = "mail"
	}
	hdr := []string{
		"From: keepwatch <" + from + ">",
		"To: " + m.To,
		"Subject: " + mime.QEncoding.Encode("utf-8", m.Subject),
		"Date: " + now.UTC().Format(time.RFC1123Z),
		fmt.Sprintf("Message-ID: <%s.%s@%s>", kind, hex.EncodeToString(rnd), host),
		"MIME-Version: 1.0",
		"Content-Type: " + ctype,
	}
	if m.HTML == "" {
		hdr = append(hdr, "Content-Transfer-Encoding: quoted-printable")
	}
	for k, v := range m.Headers {
		if strings.ContainsAny(k+v, "\r\n") {
			return nil, errors.New("mail header with a line break")
		}
		hdr = append(hdr, k+": "+v)
	}
	var b bytes.Buffer
	b.WriteString(strings.Join(hdr, "\r\n"))
	b.WriteString("\r\n\r\n")
	b.Write(body.Bytes())
	return b.Bytes(), nil
}

// Send delivers a rendered message to one recipient through the relay.
// The whole exchange is bounded by ctx and by a minute.
func Send(ctx context.Context, c Config, to string, msg []byte) error {
	if c.Addr == "" {
		return errors.New("e-mail is not configured on this keepwatch server (serve --smtp-url)")
	}
	host, _, err := net.SplitHostPort(c.Addr)
	if err != nil {
		return err
	}
	tc := c.TLSConfig
	if tc == nil {
		tc = &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	}
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	dialer := &net.Dialer{Timeout: 15 * time.Second}
	var conn net.Conn
	if c.Security == "tls" {
		conn, err = (&tls.Dialer{NetDialer: dialer, Config: tc}).DialContext(ctx, "tcp", c.Addr)
	} else {
		conn, err = dialer.DialContext(ctx, "tcp", c.Addr)
	}
	if err != nil {
		return err
	}
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	cl, err := smtp.NewClient(conn, host)
	if err != nil {
		conn.Close()
		return err
	}
	defer cl.Close()
	if err := cl.Hello("keepwatch"); err != nil {
		return err
	}
	if c.Security == "starttls" {
		if ok, _ := cl.Extension("STARTTLS"); !ok {
			return errors.New("the SMTP server does not offer STARTTLS; refusing to send in clear")
		}
		if err := cl.StartTLS(tc); err != nil {
			return err
		}
	}
	if c.Username != "" {
		if err := cl.Auth(smtp.PlainAuth("", c.Username, c.Password, host)); err != nil {
			return err
		}
	}
	if err := cl.Mail(c.From); err != nil {
		return err
	}
	if err := cl.Rcpt(to); err != nil {
		return err
	}
	w, err := cl.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write(msg); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return cl.Quit()
}
