package notify

import (
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"keepwatch"
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

// SMTPConfig is the mail relay keepwatch sends through.
type SMTPConfig struct {
	Addr     string // host:port; empty disables e-mail
	Username string
	Password string
	From     string
	// Security is "starttls" (default: required, refuse to send in clear),
	// "tls" (implicit TLS, port 465) or "none" (trusted relays on loopback).
	Security  string
	TLSConfig *tls.Config // nil: system roots, ServerName from Addr
}

// ParseSMTPURL reads smtp://user:pass@host:587?from=alerts@example.com
// (STARTTLS required), smtps://… (implicit TLS) or
// smtp://host:25?security=none.
func ParseSMTPURL(s string) (SMTPConfig, error) {
	var c SMTPConfig
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

func (n *Notifier) sendEmail(ch keepwatch.Channel, m Message) error {
	c := n.cfg.SMTP
	if c.Addr == "" {
		return errors.New("e-mail is not configured on this keepwatch server (serve --smtp-url)")
	}
	msg, err := buildMail(c.From, ch.Target, m, n.cfg.Now())
	if err != nil {
		return err
	}
	return sendMail(c, ch.Target, msg)
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

func sendMail(c SMTPConfig, to string, msg []byte) error {
	host, _, err := net.SplitHostPort(c.Addr)
	if err != nil {
		return err
	}
	tc := c.TLSConfig
	if tc == nil {
		tc = &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	}
	dialer := &net.Dialer{Timeout: 15 * time.Second}
	var conn net.Conn
	if c.Security == "tls" {
		conn, err = tls.DialWithDialer(dialer, "tcp", c.Addr, tc)
	} else {
		conn, err = dialer.Dial("tcp", c.Addr)
	}
	if err != nil {
		return err
	}
	conn.SetDeadline(time.Now().Add(60 * time.Second))
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
