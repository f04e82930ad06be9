package sbom

import (
	"bytes"
	"encoding/json"
	"regexp"
	"runtime/debug"
	"testing"
	"time"
)

func buildInfo() *debug.BuildInfo {
	return &debug.BuildInfo{
		GoVersion: "go1.26.8",
		Path:      "keepwatch/cmd/keepwatch",
		Main:      debug.Module{Path: "keepwatch", Version: "(devel)"},
		Deps: []*debug.Module{
			{Path: "modernc.org/sqlite", Version: "v1.62.0", Sum: "h1:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="},
			{Path: "github.com/jackc/pgx/v5", Version: "v5.12.0", Sum: "h1:VLO2r8bAT7Y0xZdA9Mlq8O4gk0Xh4XcTN+cK1bkYp4U="},
			{Path: "example.com/Forked", Version: "v1.0.0", Replace: &debug.Module{Path: "example.com/fork", Version: "v1.0.1", Sum: "h1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}},
		},
		Settings: []debug.BuildSetting{{Key: "-trimpath", Value: "true"}, {Key: "CGO_ENABLED", Value: "0"}, {Key: "GOOS", Value: "linux"}},
	}
}

func artifact() Artifact {
	return Artifact{
		Name: "keepwatch", Version: "1.2.3", PURL: "pkg:deb/keepwatch@1.2.3?arch=amd64", File: "keepwatch_1.2.3_amd64.deb",
		SHA256: "aa11", BinarySHA256: "bb22", Binary: "/usr/bin/keepwatch", Commit: "300d8fb",
		Time: time.Date(2026, 11, 30, 16, 26, 0, 0, time.FixedZone("CET", 3600)),
	}
}

func TestGenerateDescribesEveryLinkedModule(t *testing.T) {
	b, err := Generate(buildInfo(), artifact())
	if err != nil {
		t.Fatal(err)
	}
	var doc Document
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.BOMFormat != "CycloneDX" || doc.SpecVersion != "1.5" || doc.Version != 1 {
		t.Errorf("header %+v", doc)
	}
	if !regexp.MustCompile(`^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`).MatchString(doc.SerialNumber) {
		t.Errorf("serial number %q is not an RFC 4122 URN", doc.SerialNumber)
	}
	if doc.Metadata.Timestamp != "2026-11-30T15:26:00Z" {
		t.Errorf("timestamp %q, want the given time in UTC", doc.Metadata.Timestamp)
	}
	if c := doc.Metadata.Component; c.PURL != "pkg:deb/keepwatch@1.2.3?arch=amd64" || c.Hashes[0].Content != "aa11" {
		t.Errorf("artifact %+v", c)
	}
	byRef := map[string]Component{}
	for _, c := range doc.Components {
		byRef[c.BOMRef] = c
	}
	want := map[string]string{
		"pkg:golang/keepwatch@1.2.3?type=module":                 "bb22",
		"pkg:golang/std@go1.26.8?type=module":                    "",
		"pkg:golang/modernc.org/sqlite@v1.62.0?type=module":      "e3b0c4",
		"pkg:golang/github.com/jackc/pgx/v5@v5.12.0?type=module": "54b3b6",
		// go.sum's h1: base64 of a SHA-256, recorded in hex. What was
		// linked is the replacement.
		"pkg:golang/example.com/fork@v1.0.1?type=module": "000000",
	}
	if len(byRef) != len(want) {
		t.Errorf("%d components, want %d: %v", len(byRef), len(want), byRef)
	}
	for ref, hashPrefix := range want {
		c, ok := byRef[ref]
		if !ok {
			t.Errorf("no component %s", ref)
			continue
		}
		if hashPrefix == "" {
			continue
		}
		if len(c.Hashes) != 1 || c.Hashes[0].Alg != "SHA-256" || len(c.Hashes[0].Content) < len(hashPrefix) || c.Hashes[0].Content[:len(hashPrefix)] != hashPrefix {
			t.Errorf("%s hashes %+v, want SHA-256 %s…", ref, c.Hashes, hashPrefix)
		}
	}
	if p := byRef["pkg:golang/example.com/fork@v1.0.1?type=module"].Properties; len(p) == 0 || p[0].Value != "example.com/Forked@v1.0.0" {
		t.Errorf("replacement not recorded: %+v", p)
	}
	if len(doc.Dependencies) < 2 || doc.Dependencies[0].Ref != doc.Metadata.Component.BOMRef || len(doc.Dependencies[1].DependsOn) != 4 {
		t.Errorf("dependencies %+v", doc.Dependencies)
	}
}

func TestGenerateIsReproducible(t *testing.T) {
	a, _ := Generate(buildInfo(), artifact())
	bi := buildInfo()
	// Module order in the binary does not change the document.
	bi.Deps[0], bi.Deps[2] = bi.Deps[2], bi.Deps[0]
	b, _ := Generate(bi, artifact())
	if !bytes.Equal(a, b) {
		t.Error("the same artifact gave two documents")
	}
	other := artifact()
	other.SHA256 = "cc33"
	c, _ := Generate(buildInfo(), other)
	var da, dc Document
	json.Unmarshal(a, &da)
	json.Unmarshal(c, &dc)
	if da.SerialNumber == dc.SerialNumber {
		t.Error("two artifacts share a serial number")
	}
}

func TestGenerateRefusesAnIncompleteArtifact(t *testing.T) {
	a := artifact()
	a.SHA256 = ""
	if _, err := Generate(buildInfo(), a); err == nil {
		t.Error("no error without the artifact's hash")
	}
	if _, err := Generate(&debug.BuildInfo{}, artifact()); err == nil {
		t.Error("no error without a main module")
	}
}
