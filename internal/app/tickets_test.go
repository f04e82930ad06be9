package app_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"testing"
	"time"

	"keepwatch/internal/app"
	"keepwatch/internal/sealed"
	"keepwatch/internal/tlsutil"
)

// TestSessionsResumeOnEveryNodeSharingTheSecretKey: a TLS session begun
// on one node resumes on another holding the same secret key (no
// certificate signature on reconnection, wherever it lands), and not on
// a node with another key.
func TestSessionsResumeOnEveryNodeSharingTheSecretKey(t *testing.T) {
	certFile, keyFile, err := tlsutil.SelfSigned(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	secret := sealed.NewKey()
	node := func(key string) string {
		a := start(t, app.Config{DataDir: t.TempDir(), Addr: "127.0.0.1:0", TLSCert: certFile, TLSKey: keyFile,
			SecretKey: key, Interval: time.Minute, Logger: quiet()})
		t.Cleanup(func() {
			sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			a.Shutdown(sctx)
		})
		return a.URL()[len("https://"):]
	}
	a, b, other := node(secret), node(secret), node(sealed.NewKey())
	pem, _ := os.ReadFile(certFile)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	cache := tls.NewLRUClientSessionCache(4)
	dial := func(addr string) bool {
		t.Helper()
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr,
			&tls.Config{RootCAs: pool, ServerName: "localhost", ClientSessionCache: cache, MinVersion: tls.VersionTLS13})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		// TLS 1.3 tickets arrive after the handshake: read until the
		// server has had its say (nothing comes; the deadline ends it).
		conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		conn.Read(make([]byte, 1))
		return conn.ConnectionState().DidResume
	}
	if dial(a) {
		t.Fatal("the first connection resumed a session")
	}
	if !dial(b) {
		t.Error("a session of node A did not resume on node B with the same secret key")
	}
	if dial(other) {
		t.Error("a session resumed on a node with another secret key")
	}
}
