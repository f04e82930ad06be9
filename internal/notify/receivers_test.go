package notify_test

import (
	"bufio"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"strings"
	"sync"
	"testing"
	"time"

	"keepwatch/internal/notify"
	"keepwatch/internal/testutil"
	"keepwatch/internal/tlsutil"
)

// hookReceiver is a real HTTP webhook endpoint that checks signatures the
// documented way and counts deliveries by id.
type hookReceiver struct {
	t      *testing.T
	srv    *httptest.Server
	secret string
	clock  *testutil.Clock

	mu        sync.Mutex
	failFirst int            // answer 500 to this many requests first
	requests  int            // every request received
	accepted  map[string]int // delivery id → times answered 2xx
	bodies    []map[string]any
	badSig    int
}

func newHookReceiver(t *testing.T, clock *testutil.Clock) *hookReceiver {
	h := &hookReceiver{t: t, secret: "whsec_test", clock: clock, accepted: map[string]int{}}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		defer h.mu.Unlock()
		h.requests++
		if !notify.Verify(h.secret, r.Header.Get(notify.HeaderTimestamp), r.Header.Get(notify.HeaderSignature), body, h.clock.Now(), 5*time.Minute) {
			h.badSig++
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		if h.failFirst > 0 {
			h.failFirst--
			http.Error(w, "try later", http.StatusInternalServerError)
			return
		}
		var m map[string]any
		json.Unmarshal(body, &m)
		if m["id"] != r.Header.Get(notify.HeaderDelivery) {
			h.t.Errorf("body id %v differs from delivery header %q", m["id"], r.Header.Get(notify.HeaderDelivery))
		}
		h.accepted[r.Header.Get(notify.HeaderDelivery)]++
		h.bodies = append(h.bodies, m)
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *hookReceiver) delivered() []map[string]any {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]map[string]any(nil), h.bodies...)
}

func (h *hookReceiver) duplicates() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	d := 0
	for _, n := range h.accepted {
		d += n - 1
	}
	return d
}

// smtpServer is a small real SMTP server on loopback with STARTTLS and
// AUTH PLAIN, enough to receive keepwatch's mail.
type smtpServer struct {
	ln       net.Listener
	tls      *tls.Config
	user     string
	pass     string
	caFile   string
	mu       sync.Mutex
	messages []smtpMessage
}

type smtpMessage struct {
	from, to string
	data     string
	tls      bool
	authed   bool
}

func newSMTPServer(t *testing.T) *smtpServer {
	dir := t.TempDir()
	certFile, keyFile, err := tlsutil.SelfSigned(dir)
	if err != nil {
		t.Fatal(err)
	}
	cfg, _, err := tlsutil.ServerConfig(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &smtpServer{ln: ln, tls: cfg, user: "keepwatch", pass: "relay-secret", caFile: certFile}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go s.serve(c)
		}
	}()
	return s
}

func (s *smtpServer) serve(c net.Conn) {
	defer c.Close()
	tp := textproto.NewConn(c)
	var msg smtpMessage
	tp.PrintfLine("220 test ESMTP")
	for {
		line, err := tp.ReadLine()
		if err != nil {
			return
		}
		cmd := strings.ToUpper(strings.SplitN(line, " ", 2)[0])
		switch cmd {
		case "EHLO", "HELO":
			if msg.tls {
				tp.PrintfLine("250-test\r\n250 AUTH PLAIN")
			} else {
				tp.PrintfLine("250-test\r\n250 STARTTLS")
			}
		case "STARTTLS":
			tp.PrintfLine("220 go ahead")
			tc := tls.Server(c, s.tls)
			if err := tc.Handshake(); err != nil {
				return
			}
			c = tc
			tp = textproto.NewConn(tc)
			msg = smtpMessage{tls: true}
		case "AUTH":
			parts := strings.Fields(line)
			raw, _ := base64.StdEncoding.DecodeString(parts[len(parts)-1])
			f := strings.Split(string(raw), "\x00")
			if len(f) == 3 && f[1] == s.user && f[2] == s.pass && msg.tls {
				msg.authed = true
				tp.PrintfLine("235 ok")
			} else {
				tp.PrintfLine("535 no")
			}
		case "MAIL":
			msg.from = line
			tp.PrintfLine("250 ok")
		case "RCPT":
			msg.to = line
			tp.PrintfLine("250 ok")
		case "DATA":
			tp.PrintfLine("354 go")
			b, err := tp.ReadDotBytes()
			if err != nil {
				return
			}
			msg.data = string(b)
			s.mu.Lock()
			s.messages = append(s.messages, msg)
			s.mu.Unlock()
			tp.PrintfLine("250 queued")
		case "QUIT":
			tp.PrintfLine("221 bye")
			return
		default:
			tp.PrintfLine("250 ok")
		}
	}
}

func (s *smtpServer) received() []smtpMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]smtpMessage(nil), s.messages...)
}

var _ = bufio.NewReader
