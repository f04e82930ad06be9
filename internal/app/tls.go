package app

import (
	"net"
	"net/url"
	"strings"

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
