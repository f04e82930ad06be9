// Package outbound is keepwatch's one HTTP client for requests to
// destinations that tenants choose (webhooks and vendor channels). A
// tenant must not be able to make keepwatch reach what only keepwatch can
// reach — its loopback, the private network it runs in, a cloud metadata
// service — or read what such a destination answers. So:
//
//   - every address is checked when it is dialled, after resolution, and
//     the checked address is the one dialled (DNS rebinding cannot swap
//     it); loopback, private, link-local, shared (CGNAT), multicast,
//     unspecified, documentation and benchmark ranges and IPv6 forms that
//     embed such an IPv4 address are refused, and so are cloud metadata
//     names, unless the operator allowed them (Config.Allow);
//   - redirects are never followed: a 3xx is a failure;
//   - only http and https; no proxy from the environment;
//   - timeouts and response sizes are bounded;
//   - errors carry a generic class (Class) that may be shown to the tenant;
//     the full error is for the server's log only.
package outbound

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/textproto"
	"strconv"
	"strings"
	"syscall"
	"time"

	"keepwatch"
)

// Error classes shown to tenants. They name what went wrong without
// anything the destination said or how keepwatch's network looks.
const (
	ClassNotAllowed  = "destination not allowed"
	ClassRedirect    = "redirect refused"
	ClassRefused     = "connection refused"
	ClassReset       = "connection reset"
	ClassTimeout     = "timeout"
	ClassTLS         = "TLS error"
	ClassUnresolved  = "name not resolved"
	ClassUnreachable = "destination unreachable"
	ClassBadResponse = "invalid response"
	ClassFailed      = "delivery failed"
)

// Error is a failed outbound request: a class safe to show to a tenant,
// and the cause for the log.
type Error struct {
	class string
	err   error
}

// Errorf returns an *Error of class with a cause for the log.
func Errorf(class, format string, args ...any) *Error {
	return &Error{class: class, err: fmt.Errorf(format, args...)}
}

// StatusError is the failure of a request answered with a non-2xx
// status: class "HTTP 500" and the like.
func StatusError(status int) *Error {
	return &Error{class: "HTTP " + strconv.Itoa(status), err: fmt.Errorf("answered %d %s", status, http.StatusText(status))}
}

func (e *Error) Error() string {
	if e.err == nil {
		return e.class
	}
	return e.class + ": " + e.err.Error()
}

// Class is the generic description of the failure.
func (e *Error) Class() string { return e.class }

func (e *Error) Unwrap() error { return e.err }

// Class returns a generic description of err that is safe to show to a
// tenant: the class of an *Error (or anything with a Class method), the
// safe message of a coded keepwatch error, a class derived from network
// and TLS errors, or "delivery failed". Never a response body, a banner or
// a resolver's address.
func Class(err error) string {
	if err == nil {
		return ""
	}
	var c interface{ Class() string }
	if errors.As(err, &c) {
		return c.Class()
	}
	var ke *keepwatch.Error
	if errors.As(err, &ke) {
		return ke.Message
	}
	var tp *textproto.Error
	if errors.As(err, &tp) {
		return "mail server answered " + strconv.Itoa(tp.Code)
	}
	var ne net.Error
	var dns *net.DNSError
	var tlsRec tls.RecordHeaderError
	var tlsAlert tls.AlertError
	var tlsVerify *tls.CertificateVerificationError
	var unknownAuth x509.UnknownAuthorityError
	var hostname x509.HostnameError
	var invalid x509.CertificateInvalidError
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return ClassTimeout
	case errors.As(err, &dns):
		return ClassUnresolved
	case errors.Is(err, syscall.ECONNREFUSED):
		return ClassRefused
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return ClassReset
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return ClassUnreachable
	case errors.As(err, &tlsRec), errors.As(err, &tlsAlert), errors.As(err, &tlsVerify), errors.As(err, &unknownAuth),
		errors.As(err, &hostname), errors.As(err, &invalid):
		return ClassTLS
	}
	return ClassFailed
}

// Resolver looks names up; net.DefaultResolver is one.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Config configures a client.
type Config struct {
	// Allow lists destinations the operator allows besides public
	// addresses (serve --allow-outbound): a CIDR allows the addresses in
	// it, a host name allows that name whatever it resolves to.
	Allow []string
	// Timeout bounds a whole request (default 10 s).
	Timeout time.Duration
	// MaxResponseBytes bounds what is read of a response body (default
	// 64 KiB); more reads as a truncated body.
	MaxResponseBytes int64
	// Resolver resolves names (default net.DefaultResolver).
	Resolver Resolver
	// DialAddr, for tests, replaces the dial of a checked address.
	DialAddr func(ctx context.Context, network string, addr netip.AddrPort) (net.Conn, error)
	// TLSConfig is the client TLS configuration (nil: system roots).
	TLSConfig *tls.Config
}

// New returns the guarded client. It fails only on a malformed Allow
// entry.
func New(cfg Config) (*http.Client, error) {
	pol, err := ParsePolicy(cfg.Allow)
	if err != nil {
		return nil, err
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.MaxResponseBytes == 0 {
		cfg.MaxResponseBytes = 64 << 10
	}
	if cfg.Resolver == nil {
		cfg.Resolver = net.DefaultResolver
	}
	g := &guard{cfg: cfg, policy: pol}
	g.transport = &http.Transport{
		Proxy:                  nil, // a proxy would hide the destination from the check
		DialContext:            g.dial,
		TLSClientConfig:        cfg.TLSConfig,
		ForceAttemptHTTP2:      true,
		TLSHandshakeTimeout:    cfg.Timeout,
		ResponseHeaderTimeout:  cfg.Timeout,
		ExpectContinueTimeout:  time.Second,
		MaxIdleConns:           64,
		MaxIdleConnsPerHost:    4,
		IdleConnTimeout:        90 * time.Second,
		MaxResponseHeaderBytes: 32 << 10,
	}
	return &http.Client{
		Transport: g,
		Timeout:   cfg.Timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}, nil
}

// MustNew is New for configurations without Allow entries.
func MustNew(cfg Config) *http.Client {
	c, err := New(cfg)
	if err != nil {
		panic(err)
	}
	return c
}

// guard is the transport: it checks the request, dials only checked
// addresses and turns a redirect into an error.
type guard struct {
	cfg       Config
	policy    Policy
	transport *http.Transport
}

func (g *guard) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme != "http" && req.URL.Scheme != "https" {
		closeBody(req)
		return nil, Errorf(ClassNotAllowed, "scheme %q", req.URL.Scheme)
	}
	host := normalizeHost(req.URL.Hostname())
	if host == "" {
		closeBody(req)
		return nil, Errorf(ClassNotAllowed, "no host")
	}
	if isReservedName(host) && !g.policy.hosts[host] {
		closeBody(req)
		return nil, Errorf(ClassNotAllowed, "reserved name %q", host)
	}
	resp, err := g.transport.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode >= 300 && resp.StatusCode <= 399 {
		resp.Body.Close()
		return nil, Errorf(ClassRedirect, "answered %d, redirects are not followed", resp.StatusCode)
	}
	resp.Body = limitedBody{io.LimitReader(resp.Body, g.cfg.MaxResponseBytes), resp.Body}
	return resp, nil
}

// CloseIdleConnections closes kept-alive connections.
func (g *guard) CloseIdleConnections() { g.transport.CloseIdleConnections() }

func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}

type limitedBody struct {
	io.Reader
	io.Closer
}

// dial resolves the destination, checks every address, and dials a
// checked address (never the name again).
func (g *guard) dial(ctx context.Context, network, address string) (net.Conn, error) {
	h, p, err := net.SplitHostPort(address)
	if err != nil {
		return nil, Errorf(ClassNotAllowed, "address %q", address)
	}
	port, err := strconv.ParseUint(p, 10, 16)
	if err != nil {
		return nil, Errorf(ClassNotAllowed, "port %q", p)
	}
	host := normalizeHost(h)
	hostAllowed := g.policy.hosts[host]
	if isReservedName(host) && !hostAllowed {
		return nil, Errorf(ClassNotAllowed, "reserved name %q", host)
	}
	var addrs []netip.Addr
	if a, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{a}
	} else {
		want := "ip"
		switch network {
		case "tcp4":
			want = "ip4"
		case "tcp6":
			want = "ip6"
		}
		if addrs, err = g.cfg.Resolver.LookupNetIP(ctx, want, host); err != nil {
			return nil, &Error{class: ClassUnresolved, err: err}
		}
		if len(addrs) == 0 {
			return nil, Errorf(ClassUnresolved, "%s has no address", host)
		}
	}
	// Every address must pass: a name that resolves to a public and a
	// private address is refused, not tried in turn.
	for _, a := range addrs {
		if a.Zone() != "" {
			return nil, Errorf(ClassNotAllowed, "%s resolves to a scoped address %s", host, a)
		}
		if !hostAllowed {
			if err := g.policy.Check(a); err != nil {
				return nil, fmt.Errorf("%s: %w", host, err)
			}
		}
	}
	var firstErr error
	for _, a := range addrs {
		ap := netip.AddrPortFrom(a.Unmap(), uint16(port))
		var c net.Conn
		if g.cfg.DialAddr != nil {
			c, err = g.cfg.DialAddr(ctx, network, ap)
		} else {
			d := net.Dialer{Timeout: g.cfg.Timeout, KeepAlive: 30 * time.Second}
			if !hostAllowed {
				// The socket's own address is checked once more just before
				// connecting, whatever path led here.
				d.Control = func(_, address string, _ syscall.RawConn) error {
					got, err := netip.ParseAddrPort(address)
					if err != nil {
						return Errorf(ClassNotAllowed, "address %q", address)
					}
					return g.policy.Check(got.Addr())
				}
			}
			c, err = d.DialContext(ctx, network, ap.String())
		}
		if err == nil {
			return c, nil
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	return nil, firstErr
}

func normalizeHost(h string) string {
	return strings.TrimSuffix(strings.ToLower(strings.TrimSpace(h)), ".")
}

// metadataNames are cloud instance-metadata services and cluster
// services reached by name. localhost and *.localhost are refused too.
var metadataNames = map[string]bool{
	"metadata":                             true,
	"metadata.google.internal":             true,
	"metadata.goog":                        true,
	"instance-data":                        true,
	"instance-data.ec2.internal":           true,
	"metadata.azure.com":                   true,
	"metadata.tencentyun.com":              true,
	"metadata.platformequinix.com":         true,
	"metadata.packet.net":                  true,
	"kubernetes.default.svc":               true,
	"kubernetes.default":                   true,
	"kubernetes.default.svc.cluster.local": true,
}

func isReservedName(host string) bool {
	return metadataNames[host] || host == "localhost" || strings.HasSuffix(host, ".localhost")
}
