package packaging

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// sourceDateEpoch is the fixed time of the test builds (2025-11-30 00:00 UTC).
const sourceDateEpoch = 1764460800

// Versions built by the tests: v1 twice (signed, for the reproducibility
// check), v2 once (unsigned, for the upgrade).
const (
	v1 = "1.0.0"
	v2 = "1.0.1"
)

// requireAll reports whether a missing tool must fail the test (make test).
func requireAll() bool { return os.Getenv("KEEPWATCH_REQUIRE_ALL") == "1" }

// need skips the test, or fails it under KEEPWATCH_REQUIRE_ALL=1, when a
// tool is missing (scripts/ensure-packaging.sh installs them) or when not
// running as root (dpkg --root runs the maintainer scripts in a chroot).
func need(t *testing.T, root bool, tools ...string) {
	t.Helper()
	var missing []string
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if root && os.Geteuid() != 0 {
		missing = append(missing, "root (dpkg --root chroots into the scratch root)")
	}
	if len(missing) == 0 {
		return
	}
	msg := fmt.Sprintf("missing %s (bash scripts/ensure-packaging.sh installs the tools)", strings.Join(missing, ", "))
	if requireAll() {
		t.Fatal(msg + "; required with KEEPWATCH_REQUIRE_ALL=1")
	}
	t.Skip(msg)
}

var buildTools = []string{"go", "git", "dpkg-deb", "wixl", "msibuild", "msiinfo", "msiextract", "osslsigncode", "faketime", "sha256sum"}

// builds are the artifacts of the test builds, made once per test binary.
type builds struct {
	a, b, c string // output dirs: v1 signed, v1 signed again, v2 unsigned
	signer  signer
	err     error
}

var (
	buildOnce sync.Once
	built     builds
	tmpRoot   string
)

// TestMain removes the builds afterwards, unless KEEPWATCH_PACKAGING_KEEP
// is set (to look at them after a failure).
func TestMain(m *testing.M) {
	code := m.Run()
	if tmpRoot != "" && os.Getenv("KEEPWATCH_PACKAGING_KEEP") == "" {
		os.RemoveAll(tmpRoot)
	}
	os.Exit(code)
}

// artifacts builds (once) and returns the test builds.
func artifacts(t *testing.T) builds {
	t.Helper()
	need(t, false, buildTools...)
	buildOnce.Do(func() {
		var err error
		if tmpRoot, err = os.MkdirTemp("", "keepwatch-packaging-"); err != nil {
			built.err = err
			return
		}
		built.a, built.b, built.c = filepath.Join(tmpRoot, "a"), filepath.Join(tmpRoot, "b"), filepath.Join(tmpRoot, "c")
		if built.signer, err = newSigner(filepath.Join(tmpRoot, "pki")); err != nil {
			built.err = err
			return
		}
		sign := []string{"SIGN_CERT=" + built.signer.chain, "SIGN_KEY=" + built.signer.key, "SIGN_URL=https://keepwatch.example"}
		for _, b := range []struct {
			out, version string
			env          []string
		}{{built.a, v1, sign}, {built.b, v1, sign}, {built.c, v2, nil}} {
			start := time.Now()
			if err := buildPackages(b.out, b.version, b.env); err != nil {
				built.err = err
				return
			}
			fmt.Fprintf(os.Stderr, "packaging: built %s in %s\n", b.version, time.Since(start).Round(100*time.Millisecond))
		}
	})
	if built.err != nil {
		t.Fatal(built.err)
	}
	return built
}

func buildPackages(out, version string, env []string) error {
	cmd := exec.Command("bash", "../scripts/packages.sh", "deb", "msi")
	cmd.Env = append(os.Environ(), append(env, "OUT="+out, "VERSION="+version, fmt.Sprintf("SOURCE_DATE_EPOCH=%d", sourceDateEpoch))...)
	var outb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &outb, &outb
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("scripts/packages.sh %s: %v\n%s", version, err, outb.String())
	}
	return nil
}

// run runs a command and returns its combined output; a failure fails t.
func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// artifactNames are the files of a build of version.
func artifactNames(version string) (deb, msi string) {
	return "keepwatch_" + strings.Replace(version, "-", "~", 1) + "_amd64.deb", "keepwatch-agent-" + version + "-x64.msi"
}

func fileSHA256(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// signer is a throwaway code-signing CA and certificate.
type signer struct {
	ca, chain, key string // PEM files
	otherCA        string // a CA that signed nothing
}

func newSigner(dir string) (signer, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return signer{}, err
	}
	s := signer{ca: filepath.Join(dir, "ca.pem"), chain: filepath.Join(dir, "chain.pem"), key: filepath.Join(dir, "key.pem"), otherCA: filepath.Join(dir, "other-ca.pem")}
	// Valid at the source's date (the signing time) and now.
	notBefore := time.Unix(sourceDateEpoch, 0).AddDate(-1, 0, 0)
	notAfter := time.Now().AddDate(1, 0, 0)
	newCA := func(name string) (*x509.Certificate, *rsa.PrivateKey, []byte, error) {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return nil, nil, nil, err
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name, Organization: []string{"keepwatch tests"}},
			NotBefore: notBefore, NotAfter: notAfter, IsCA: true, BasicConstraintsValid: true,
			KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
		if err != nil {
			return nil, nil, nil, err
		}
		c, err := x509.ParseCertificate(der)
		return c, k, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), err
	}
	ca, caKey, caPEM, err := newCA("keepwatch test code signing CA")
	if err != nil {
		return s, err
	}
	_, _, otherPEM, err := newCA("keepwatch test other CA")
	if err != nil {
		return s, err
	}
	// RSA: PKCS #1 v1.5 signatures are deterministic, so a signed build is
	// reproducible too.
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return s, err
	}
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "keepwatch test publisher", Organization: []string{"keepwatch tests"}},
		NotBefore: notBefore, NotAfter: notAfter, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
	}
	der, err := x509.CreateCertificate(rand.Reader, leaf, ca, &k.PublicKey, caKey)
	if err != nil {
		return s, err
	}
	chain := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), caPEM...)
	keyDER, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return s, err
	}
	for path, b := range map[string][]byte{
		s.ca: caPEM, s.otherCA: otherPEM, s.chain: chain,
		s.key: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
	} {
		if err := os.WriteFile(path, b, 0o600); err != nil {
			return s, err
		}
	}
	return s, nil
}
