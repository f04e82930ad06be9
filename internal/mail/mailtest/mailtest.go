// Package mailtest runs a real SMTP server on loopback for tests: keepwatch
// sends to it through its usual client, and tests read what arrived.
package mailtest

import (
	"bytes"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	kwmail "keepwatch/internal/mail"
)

// Message is one mail the server accepted.
type Message struct {
	From, To string
	Subject  string
	Text     string // the text/plain part, decoded
	Raw      []byte
}

// Server is an SMTP server on 127.0.0.1 that keeps every message.
type Server struct {
	srv  *smtp.Server
	addr string

	mu       sync.Mutex
	messages []Message
	arrived  chan struct{}
}

// NewServer starts a server, stopped when the test ends.
func NewServer(t testing.TB) *Server {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{addr: ln.Addr().String(), arrived: make(chan struct{}, 1000)}
	s.srv = smtp.NewServer(s)
	s.srv.Domain = "localhost"
	s.srv.ReadTimeout, s.srv.WriteTimeout = 10*time.Second, 10*time.Second
	s.srv.MaxMessageBytes = 1 << 20
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.srv.Serve(ln)
	}()
	t.Cleanup(func() {
		s.srv.Close()
		<-done
	})
	return s
}

// Config is keepwatch's relay configuration for this server (plain SMTP on
// loopback).
func (s *Server) Config() kwmail.Config {
	return kwmail.Config{Addr: s.addr, From: "keepwatch@test.example", Security: "none"}
}

// Messages returns what arrived so far.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.messages...)
}

// Wait returns the first message to to that arrived after skip earlier
// ones to the same address, waiting up to d.
func (s *Server) Wait(to string, skip int, d time.Duration) (Message, bool) {
	deadline := time.After(d)
	for {
		n := 0
		for _, m := range s.Messages() {
			if strings.EqualFold(m.To, to) {
				if n == skip {
					return m, true
				}
				n++
			}
		}
		select {
		case <-s.arrived:
		case <-deadline:
			return Message{}, false
		}
	}
}

// NewSession implements smtp.Backend.
func (s *Server) NewSession(*smtp.Conn) (smtp.Session, error) { return &session{s: s}, nil }

type session struct {
	s        *Server
	from, to string
}

func (x *session) Reset()        { x.from, x.to = "", "" }
func (x *session) Logout() error { return nil }
func (x *session) Mail(from string, _ *smtp.MailOptions) error {
	x.from = from
	return nil
}
func (x *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	x.to = to
	return nil
}

func (x *session) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	m := Message{From: x.from, To: x.to, Raw: raw}
	if msg, err := mail.ReadMessage(bytes.NewReader(raw)); err == nil {
		m.Subject, _ = new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject"))
		m.Text = textPart(msg)
	}
	x.s.mu.Lock()
	x.s.messages = append(x.s.messages, m)
	x.s.mu.Unlock()
	select {
	case x.s.arrived <- struct{}{}:
	default:
	}
	return nil
}

// textPart returns a message's text/plain content, decoded.
func textPart(msg *mail.Message) string {
	ctype, params, _ := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if strings.HasPrefix(ctype, "multipart/") {
		mr := multipart.NewReader(msg.Body, params["boundary"])
		for {
			p, err := mr.NextPart()
			if err != nil {
				return ""
			}
			if strings.HasPrefix(p.Header.Get("Content-Type"), "text/plain") {
				b, _ := io.ReadAll(p) // multipart decodes quoted-printable itself
				return string(b)
			}
		}
	}
	var body io.Reader = msg.Body
	if strings.EqualFold(msg.Header.Get("Content-Transfer-Encoding"), "quoted-printable") {
		body = quotedprintable.NewReader(body)
	}
	b, _ := io.ReadAll(body)
	return string(b)
}
