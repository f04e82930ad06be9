// Package tlsutil provides keepwatch's TLS set-up: a self-signed
// certificate made once per data directory, and its fingerprint.
package tlsutil

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"keepwatch/internal/fileutil"
)

// SelfSigned returns the paths of <dir>/tls/cert.pem and key.pem, creating
// them on first use: a self-signed leaf certificate (ECDSA P-256, valid ten
// years, CA:FALSE, for server authentication only) for localhost, the
// loopback addresses, the host name and any extra names given. Being no
// CA, it can vouch for nothing but keepwatch itself, even where it is
// trusted (agent enroll --ca). The directory is made 0700 and the key
// 0600 on every call, whatever they were.
func SelfSigned(dir string, names ...string) (certFile, keyFile string, err error) {
	tdir := filepath.Join(dir, "tls")
	certFile, keyFile = filepath.Join(tdir, "cert.pem"), filepath.Join(tdir, "key.pem")
	if err := fileutil.PrivateDir(tdir); err != nil {
		return "", "", err
	}
	if _, err := os.Stat(certFile); err == nil {
		if _, err := os.Stat(keyFile); err == nil {
			return certFile, keyFile, fileutil.PrivateFile(keyFile)
		}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", err
	}
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	host, _ := os.Hostname()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "keepwatch", Organization: []string{"keepwatch self-signed"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  false,
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	if host != "" && host != "localhost" {
		tmpl.DNSNames = append(tmpl.DNSNames, host)
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if n != "" {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return "", "", err
	}
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return "", "", err
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		return "", "", err
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return "", "", err
	}
	return certFile, keyFile, nil
}

// Fingerprint returns the SHA-256 fingerprint of a certificate's DER,
// as colon-separated upper-case hex.
func Fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	h := strings.ToUpper(hex.EncodeToString(sum[:]))
	var b strings.Builder
	for i := 0; i < len(h); i += 2 {
		if i > 0 {
			b.WriteByte(':')
		}
		b.WriteString(h[i : i+2])
	}
	return b.String()
}

// ServerConfig loads a key pair into a TLS config: TLS 1.2 minimum, 1.3
// preferred by Go's defaults, session tickets on so agents resume.
func ServerConfig(certFile, keyFile string) (*tls.Config, string, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, "", fmt.Errorf("load TLS key pair: %w", err)
	}
	if len(cert.Certificate) == 0 {
		return nil, "", errors.New("no certificate in " + certFile)
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, CipherSuites: CipherSuites, Certificates: []tls.Certificate{cert}}, Fingerprint(cert.Certificate[0]), nil
}

// CipherSuites are the TLS 1.2 suites keepwatch accepts: forward-secret
// key exchange and AEAD only (TLS 1.3's suites are all of that kind and
// are not configurable).
var CipherSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// Names lists the host names and addresses a certificate covers, and
// whether it is a CA certificate.
func Names(certFile string) (names []string, isCA bool, err error) {
	b, err := os.ReadFile(certFile)
	if err != nil {
		return nil, false, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, false, errors.New("no PEM certificate in " + certFile)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return nil, false, err
	}
	names = append(names, c.DNSNames...)
	for _, ip := range c.IPAddresses {
		names = append(names, ip.String())
	}
	return names, c.IsCA, nil
}

// ClientConfig trusts the system roots plus, if caFile is set, the
// certificates in it.
func ClientConfig(caFile string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ClientSessionCache: tls.NewLRUClientSessionCache(64)}
	if caFile == "" {
		return cfg, nil
	}
	pemBytes, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pemBytes) {
		return nil, fmt.Errorf("%s holds no PEM certificate", caFile)
	}
	cfg.RootCAs = pool
	return cfg, nil
}
