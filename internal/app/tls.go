package app

import (
	"context"
	"net"
	"net/url"
	"strings"
	"time"

	"keepwatch/internal/sealed"
	"keepwatch/internal/tlsutil"
)

// certNames are the names a new self-signed certificate covers besides
// localhost, loopback and the host name: the public URL's host and a
// specific listen address.
func (a *App) certNames() []string {
	var names []string
	if u, err := url.Parse(a.cfg.PublicURL); err == nil && u.Hostname() != "" {
		names = append(names, u.Hostname())
	}
	if host, _, err := net.SplitHostPort(a.cfg.Addr); err == nil && host != "" {
		if ip := net.ParseIP(host); ip == nil || !ip.IsUnspecified() {
			names = append(names, host)
		}
	}
	return names
}

// logCertificate says which names the certificate covers, so that an
// operator sees at start whether agents can reach keepwatch by the name
// they use.
func (a *App) logCertificate(fingerprint string) {
	names, isCA, err := tlsutil.Names(a.CertFile)
	if err != nil {
		a.log.Warn("TLS certificate: cannot read its names", "file", a.CertFile, "err", err)
	}
	a.log.Info("TLS certificate", "file", a.CertFile, "sha256", fingerprint, "names", strings.Join(names, ","))
	if isCA && a.cfg.SelfSigned {
		a.log.Warn("the self-signed certificate was made by an older keepwatch as a CA certificate; " +
			"remove the tls directory and restart to get a leaf certificate (agents then need the new cert.pem)")
	}
}

// ticketKeys are the TLS 1.3 session ticket keys: derived from the secret
// key and the UTC day, so that every node holding the same secret key
// resumes the sessions of the others (an agent's reconnection costs no
// certificate signature, wherever the load balancer sends it). Today's
// key under the current secret key issues tickets; yesterday's, and
// those of older secret keys still in the ring, only open them. Resumed
// handshakes still run an ephemeral key exchange, so a ticket key
// reveals no traffic.
func ticketKeys(keys *sealed.Keyring, now time.Time) [][32]byte {
	var out [][32]byte
	for _, day := range []time.Time{now.UTC(), now.UTC().AddDate(0, 0, -1)} {
		for _, k := range keys.Derive("tls session tickets v1 " + day.Format(time.DateOnly)) {
			out = append(out, [32]byte(k))
		}
	}
	return out
}

// rotateTickets moves to the next day's ticket keys at every UTC
// midnight.
func (a *App) rotateTickets(ctx context.Context) {
	for {
		now := time.Now().UTC()
		next := time.Date(now.Year(), now.Month(), now.Day()+1, 0, 0, 0, 0, time.UTC)
		t := time.NewTimer(next.Sub(now))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
			a.tlsConfig.SetSessionTicketKeys(ticketKeys(a.keys, time.Now()))
		}
	}
}
