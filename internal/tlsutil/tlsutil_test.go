package tlsutil_test

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"keepwatch/internal/tlsutil"
)

// serve accepts TLS connections with cfg until the test ends.
func serve(t *testing.T, cfg *tls.Config) string {
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				c.(*tls.Conn).Handshake()
				c.Write([]byte("ok"))
				c.Close()
			}()
		}
	}()
	return ln.Addr().String()
}

func handshake(addr string, cfg *tls.Config) error {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		return err
	}
	return c.Close()
}

func parse(t *testing.T, certFile string) *x509.Certificate {
	b, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestSelfSignedIsALeafThatAgentsTrustAndThatVouchesForNothingElse: the
// certificate is CA:FALSE without certSign; a client given it as its CA
// (agent enroll --ca) connects; a certificate it "signs" for another
// name is refused by that client.
func TestSelfSignedIsALeafThatAgentsTrustAndThatVouchesForNothingElse(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, err := tlsutil.SelfSigned(dir, "keepwatch.example.net")
	if err != nil {
		t.Fatal(err)
	}
	leaf := parse(t, certFile)
	if leaf.IsCA || !leaf.BasicConstraintsValid || leaf.KeyUsage&x509.KeyUsageCertSign != 0 {
		t.Fatalf("not a leaf: IsCA=%v basic=%v usage=%v", leaf.IsCA, leaf.BasicConstraintsValid, leaf.KeyUsage)
	}
	names, isCA, err := tlsutil.Names(certFile)
	if err != nil || isCA || len(names) < 3 {
		t.Fatalf("names %v %v %v", names, isCA, err)
	}
	srv, _, err := tlsutil.ServerConfig(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, srv)
	client, err := tlsutil.ClientConfig(certFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := handshake(addr, client); err != nil {
		t.Fatalf("a client trusting the certificate: %v", err)
	}
	for _, name := range []string{"localhost", "keepwatch.example.net"} {
		c := client.Clone()
		c.ServerName = name
		if err := handshake(addr, c); err != nil {
			t.Fatalf("as %s: %v", name, err)
		}
	}

	// Someone with the key makes a certificate for another site under it.
	kb, _ := os.ReadFile(keyFile)
	blk, _ := pem.Decode(kb)
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	key := k.(*ecdsa.PrivateKey)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "bank.example"}, DNSNames: []string{"bank.example"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, leaf, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	evil := serve(t, &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der, leaf.Raw}, PrivateKey: key}}})
	c := client.Clone()
	c.ServerName = "bank.example"
	if err := handshake(evil, c); err == nil {
		t.Fatal("a certificate issued under the self-signed leaf was trusted")
	}
}

func TestOnlyForwardSecretAEADSuitesUnderTLS12(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, err := tlsutil.SelfSigned(dir)
	if err != nil {
		t.Fatal(err)
	}
	srv, _, err := tlsutil.ServerConfig(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, srv)
	base := &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12}
	for _, cs := range []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256,
		tls.TLS_RSA_WITH_AES_128_GCM_SHA256, tls.TLS_RSA_WITH_AES_128_CBC_SHA} {
		c := base.Clone()
		c.CipherSuites = []uint16{cs}
		if err := handshake(addr, c); err == nil {
			t.Errorf("TLS 1.2 with %s was accepted", tls.CipherSuiteName(cs))
		}
	}
	for _, cs := range []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256} {
		c := base.Clone()
		c.CipherSuites = []uint16{cs}
		if err := handshake(addr, c); err != nil {
			t.Errorf("TLS 1.2 with %s: %v", tls.CipherSuiteName(cs), err)
		}
	}
	old := &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}
	if err := handshake(addr, old); err == nil {
		t.Error("TLS 1.1 was accepted")
	}
	if err := handshake(addr, &tls.Config{InsecureSkipVerify: true}); err != nil {
		t.Errorf("TLS 1.3: %v", err)
	}
}

func TestSelfSignedKeyAndDirectoryAreMadePrivateAgain(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("POSIX modes")
	}
	dir := t.TempDir()
	_, keyFile, err := tlsutil.SelfSigned(dir)
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(filepath.Dir(keyFile), 0o755)
	os.Chmod(keyFile, 0o644)
	if _, _, err := tlsutil.SelfSigned(dir); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]os.FileMode{filepath.Dir(keyFile): 0o700, keyFile: 0o600} {
		fi, _ := os.Stat(p)
		if fi.Mode().Perm() != want {
			t.Errorf("%s: %v, want %v", p, fi.Mode().Perm(), want)
		}
	}
}
