// Command sbom writes the CycloneDX SBOM of one release artifact (see
// internal/sbom). scripts/packages.sh runs it for every package:
//
//	go run ./scripts/sbom -binary keepwatch -artifact keepwatch_1.2.3_amd64.deb \
//	    -name keepwatch -version 1.2.3 -purl 'pkg:deb/keepwatch@1.2.3?arch=amd64' \
//	    -path /usr/bin/keepwatch -commit "$(git rev-parse HEAD)" -time "$SOURCE_DATE_EPOCH"
package main

import (
	"crypto/sha256"
	"debug/buildinfo"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"keepwatch/internal/sbom"
)

func main() {
	bin := flag.String("binary", "", "the Go binary inside the artifact")
	artifact := flag.String("artifact", "", "the artifact file (.deb, .msi)")
	var a sbom.Artifact
	flag.StringVar(&a.Name, "name", "", "artifact name")
	flag.StringVar(&a.Version, "version", "", "artifact version")
	flag.StringVar(&a.PURL, "purl", "", "artifact package URL")
	flag.StringVar(&a.Binary, "path", "", "where the binary is installed")
	flag.StringVar(&a.Commit, "commit", "", "source revision")
	epoch := flag.Int64("time", 0, "document timestamp, Unix seconds (SOURCE_DATE_EPOCH)")
	out := flag.String("o", "", "output file (default stdout)")
	flag.Parse()
	if err := run(*bin, *artifact, *epoch, *out, a); err != nil {
		fmt.Fprintln(os.Stderr, "sbom:", err)
		os.Exit(1)
	}
}

func run(bin, artifact string, epoch int64, out string, a sbom.Artifact) error {
	if bin == "" || artifact == "" {
		return fmt.Errorf("-binary and -artifact are required")
	}
	bi, err := buildinfo.ReadFile(bin)
	if err != nil {
		return err
	}
	if a.BinarySHA256, err = fileSHA256(bin); err != nil {
		return err
	}
	if a.SHA256, err = fileSHA256(artifact); err != nil {
		return err
	}
	a.File = filepath.Base(artifact)
	a.Time = time.Unix(epoch, 0)
	b, err := sbom.Generate(bi, a)
	if err != nil {
		return err
	}
	if out == "" {
		_, err = os.Stdout.Write(b)
		return err
	}
	return os.WriteFile(out, b, 0o644)
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
