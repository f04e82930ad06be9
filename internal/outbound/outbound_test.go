package outbound_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"keepwatch/internal/outbound"
)

// receiver is a real HTTP endpoint on loopback that counts every request
// it gets.
type receiver struct {
	srv  *httptest.Server
	hits atomic.Int64
	port string
}

func newReceiver(t *testing.T, h http.HandlerFunc) *receiver {
	r := &receiver{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.hits.Add(1)
		if h != nil {
			h(w, req)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(r.srv.Close)
	_, r.port, _ = net.SplitHostPort(r.srv.Listener.Addr().String())
	return r
}

// fakeDNS answers from a table; a name with several answers in sequence
// gives the next one on each lookup (a rebinding name server).
type fakeDNS struct {
	mu      sync.Mutex
	answers map[string][][]string
	lookups map[string]int
}

func (f *fakeDNS) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	seq, ok := f.answers[host]
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: host, Server: "10.9.8.7:53", IsNotFound: true}
	}
	i := min(f.lookups[host], len(seq)-1)
	f.lookups[host]++
	var out []netip.Addr
	for _, s := range seq[i] {
		out = append(out, netip.MustParseAddr(s))
	}
	return out, nil
}

// recordingDial dials for real, remembering every address it was asked to
// dial; public test addresses are not dialled (this machine cannot reach
// them) but recorded.
type recordingDial struct {
	mu     sync.Mutex
	dialed []netip.AddrPort
}

func (d *recordingDial) dial(ctx context.Context, network string, ap netip.AddrPort) (net.Conn, error) {
	d.mu.Lock()
	d.dialed = append(d.dialed, ap)
	d.mu.Unlock()
	if !ap.Addr().IsLoopback() {
		return nil, errors.New("test: public address not dialled")
	}
	var nd net.Dialer
	return nd.DialContext(ctx, network, ap.String())
}

func (d *recordingDial) addrs() []netip.AddrPort {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]netip.AddrPort(nil), d.dialed...)
}

func post(t *testing.T, c *http.Client, url string) error {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(`{"secret":"body"}`))
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return outbound.StatusError(resp.StatusCode)
	}
	return nil
}

func TestDefaultClientRefusesInternalDestinations(t *testing.T) {
	rcv := newReceiver(t, nil)
	dns := &fakeDNS{answers: map[string][][]string{
		"internal.example":         {{"127.0.0.1"}},
		"mixed.example":            {{"93.184.216.34", "127.0.0.1"}},
		"metadata.google.internal": {{"169.254.169.254"}},
		"metadata":                 {{"169.254.169.254"}},
		"instance-data":            {{"169.254.169.254"}},
		"localhost":                {{"127.0.0.1", "::1"}},
		"v6.example":               {{"::1"}},
		"ula.example":              {{"fd12:3456::1"}},
	}, lookups: map[string]int{}}
	rd := &recordingDial{}
	c, err := outbound.New(outbound.Config{Resolver: dns, DialAddr: rd.dial, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	p := rcv.port
	for _, u := range []string{
		rcv.srv.URL,
		"http://127.0.0.2:" + p + "/",
		"http://[::1]:" + p + "/",
		"http://[::ffff:127.0.0.1]:" + p + "/",
		"http://[::ffff:7f00:1]:" + p + "/",
		"http://[64:ff9b::7f00:1]:" + p + "/",
		"http://[2002:7f00:1::1]:" + p + "/",
		"http://[::127.0.0.1]:" + p + "/",
		"http://0.0.0.0:" + p + "/",
		"http://localhost:" + p + "/",
		"http://LocalHost.:" + p + "/",
		"http://internal.example:" + p + "/",
		"http://mixed.example:" + p + "/",
		"http://v6.example:" + p + "/",
		"http://10.0.0.1/hook",
		"http://172.16.5.4/hook",
		"http://192.168.1.1/hook",
		"http://100.64.0.1/hook",
		"http://169.254.169.254/latest/meta-data/",
		"http://[fe80::1]/hook",
		"http://[fd00::1]/hook",
		"http://ula.example/hook",
		"http://metadata.google.internal/computeMetadata/v1/",
		"http://metadata/computeMetadata/v1/",
		"http://instance-data/latest/",
		"http://192.0.2.10/hook",
		"http://198.18.0.1/hook",
		"http://224.0.0.1/hook",
		"http://255.255.255.255/hook",
		"http://[ff02::1]/hook",
		"http://[2001:db8::1]/hook",
	} {
		err := post(t, c, u)
		if got := outbound.Class(err); got != outbound.ClassNotAllowed {
			t.Errorf("%s: class %q (%v), want %q", u, got, err, outbound.ClassNotAllowed)
		}
	}
	for _, u := range []string{"ftp://127.0.0.1:" + p + "/", "file:///etc/passwd", "gopher://10.0.0.1/"} {
		if err := post(t, c, u); err == nil {
			t.Errorf("%s: sent", u)
		}
	}
	if n := rcv.hits.Load(); n != 0 {
		t.Fatalf("the loopback receiver got %d requests", n)
	}
	if d := rd.addrs(); len(d) != 0 {
		t.Fatalf("dialled %v", d)
	}
}

func TestRebindingNameCannotReachLoopback(t *testing.T) {
	rcv := newReceiver(t, nil)
	// The name answers a public address, then loopback, then public again:
	// whatever was checked before, each dial checks what it dials.
	dns := &fakeDNS{answers: map[string][][]string{
		"rebind.example": {{"93.184.216.34"}, {"127.0.0.1"}, {"93.184.216.34"}, {"127.0.0.1"}, {"::ffff:127.0.0.1"}, {"127.0.0.1"}},
	}, lookups: map[string]int{}}
	rd := &recordingDial{}
	c, err := outbound.New(outbound.Config{Resolver: dns, DialAddr: rd.dial, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	classes := map[string]int{}
	for range 6 {
		// A new connection each time, so that every request resolves.
		c.CloseIdleConnections()
		classes[outbound.Class(post(t, c, "http://rebind.example:"+rcv.port+"/hook"))]++
	}
	if n := rcv.hits.Load(); n != 0 {
		t.Fatalf("the loopback receiver got %d requests", n)
	}
	for _, ap := range rd.addrs() {
		if ap.Addr() != netip.MustParseAddr("93.184.216.34") {
			t.Fatalf("dialled %s", ap)
		}
	}
	if classes[outbound.ClassNotAllowed] != 4 || len(rd.addrs()) != 2 {
		t.Fatalf("classes %v, dialled %v", classes, rd.addrs())
	}
}

func TestRedirectsAreRefusedAndNotReplayed(t *testing.T) {
	target := newReceiver(t, nil)
	var bodies atomic.Int64
	hop := newReceiver(t, func(w http.ResponseWriter, r *http.Request) {
		if b, _ := io.ReadAll(r.Body); len(b) > 0 {
			bodies.Add(1)
		}
		status, _ := strconv.Atoi(r.URL.Query().Get("status"))
		http.Redirect(w, r, target.srv.URL+"/stolen", status)
	})
	c, err := outbound.New(outbound.Config{Allow: []string{"127.0.0.1/32"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, status := range []int{301, 302, 303, 307, 308} {
		err := post(t, c, hop.srv.URL+"/?status="+strconv.Itoa(status))
		if got := outbound.Class(err); got != outbound.ClassRedirect {
			t.Fatalf("class %q (%v), want %q", got, err, outbound.ClassRedirect)
		}
	}
	if target.hits.Load() != 0 {
		t.Fatalf("the redirect was followed %d times", target.hits.Load())
	}
	if hop.hits.Load() != 5 || bodies.Load() != 5 {
		t.Fatalf("hop got %d requests with %d bodies", hop.hits.Load(), bodies.Load())
	}
}

func TestAllowListOpensOnlyWhatItNames(t *testing.T) {
	rcv := newReceiver(t, nil)
	dns := &fakeDNS{answers: map[string][][]string{
		"hooks.corp.example": {{"127.0.0.1"}},
		"other.corp.example": {{"127.0.0.1"}},
	}, lookups: map[string]int{}}
	c, err := outbound.New(outbound.Config{Allow: []string{"hooks.corp.example", "10.20.0.0/16"}, Resolver: dns})
	if err != nil {
		t.Fatal(err)
	}
	if err := post(t, c, "http://hooks.corp.example:"+rcv.port+"/hook"); err != nil {
		t.Fatalf("allowed host: %v", err)
	}
	if err := post(t, c, "http://other.corp.example:"+rcv.port+"/hook"); outbound.Class(err) != outbound.ClassNotAllowed {
		t.Fatalf("other host: %v", err)
	}
	if err := post(t, c, rcv.srv.URL); outbound.Class(err) != outbound.ClassNotAllowed {
		t.Fatalf("loopback by address: %v", err)
	}
	if rcv.hits.Load() != 1 {
		t.Fatalf("receiver got %d requests, want 1", rcv.hits.Load())
	}
	c, err = outbound.New(outbound.Config{Allow: []string{"127.0.0.1/32"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := post(t, c, rcv.srv.URL); err != nil {
		t.Fatalf("allowed CIDR: %v", err)
	}
	if err := post(t, c, "http://[::ffff:127.0.0.1]:"+rcv.port+"/"); err != nil {
		t.Fatalf("allowed CIDR, mapped form: %v", err)
	}
	if err := post(t, c, "http://127.0.0.2:"+rcv.port+"/"); outbound.Class(err) != outbound.ClassNotAllowed {
		t.Fatalf("outside the CIDR: %v", err)
	}
	for _, bad := range []string{"10.0.0.0/33", "not a host!", "http://x/", "a..b"} {
		if _, err := outbound.New(outbound.Config{Allow: []string{bad}}); err == nil {
			t.Errorf("allow entry %q accepted", bad)
		}
	}
}

func TestErrorsShownToTenantsAreGenericClasses(t *testing.T) {
	c, err := outbound.New(outbound.Config{Allow: []string{"127.0.0.0/8"}, Timeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	// A listener that answers with a banner instead of HTTP.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			conn.Write([]byte("fake SSH-2.0-OpenSSH_9.2 internal-db-7\r\n\r\n"))
			conn.Close()
		}
	}()
	// Port 1 (tcpmux) is served by nothing here and never handed out as an
	// ephemeral port, so no other test's listener can take it meanwhile.
	const closedAddr = "127.0.0.1:1"
	slow := newReceiver(t, func(w http.ResponseWriter, r *http.Request) { time.Sleep(2 * time.Second) })
	failing := newReceiver(t, func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "stack trace: db at 10.1.2.3:5432 password=hunter2", http.StatusInternalServerError)
	})
	tlsSrv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer tlsSrv.Close()
	big := newReceiver(t, func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(strings.Repeat("x", 1<<20)))
	})
	dns := &fakeDNS{answers: map[string][][]string{}, lookups: map[string]int{}}
	cNoDNS, _ := outbound.New(outbound.Config{Resolver: dns})

	for _, tc := range []struct {
		client *http.Client
		url    string
		want   string
	}{
		{c, "http://" + ln.Addr().String() + "/", ""},
		{c, "http://" + closedAddr + "/", outbound.ClassRefused},
		{c, slow.srv.URL, outbound.ClassTimeout},
		{c, failing.srv.URL, "HTTP 500"},
		{c, tlsSrv.URL, outbound.ClassTLS},
		{cNoDNS, "http://nowhere.example/", outbound.ClassUnresolved},
	} {
		err := post(t, tc.client, tc.url)
		got := outbound.Class(err)
		if err == nil || (tc.want != "" && got != tc.want) {
			t.Errorf("%s: class %q (%v), want %q", tc.url, got, err, tc.want)
		}
		for _, leak := range []string{"fake", "SSH", "internal-db", "hunter2", "10.1.2.3", "10.9.8.7", "127.0.0.1", "x509", "nowhere"} {
			if strings.Contains(got, leak) {
				t.Errorf("%s: class %q shows %q", tc.url, got, leak)
			}
		}
	}
	resp, err := c.Get(big.srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if len(b) != 64<<10 {
		t.Fatalf("read %d bytes of a 1 MiB answer, want the 64 KiB bound", len(b))
	}
}
