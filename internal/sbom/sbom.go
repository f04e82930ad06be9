// Package sbom describes a built keepwatch artifact as a CycloneDX 1.5
// software bill of materials. Its source is the build information the Go
// toolchain embeds in every binary (what `go version -m` prints): the
// main module, every module linked in with its version and go.sum hash,
// the toolchain and the build settings. Nothing depends on the clock or
// the machine beyond what the caller passes, so the same artifact always
// gives the same bytes (release builds are reproducible, their SBOMs too).
package sbom

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"runtime/debug"
	"sort"
	"strings"
	"time"
)

// Artifact is what the document describes: a package holding one binary.
type Artifact struct {
	Name    string // keepwatch, keepwatch-agent
	Version string
	PURL    string // e.g. pkg:deb/keepwatch@1.2.3?arch=amd64
	File    string // file name of the artifact
	SHA256  string // hex SHA-256 of the artifact file

	Binary       string // the binary's path inside the artifact
	BinarySHA256 string // hex SHA-256 of the binary
	Commit       string // source revision, optional
	// Time is the document's timestamp: the source's date
	// (SOURCE_DATE_EPOCH), not the moment of generation.
	Time time.Time
}

// Document is the subset of CycloneDX 1.5 keepwatch fills in.
type Document struct {
	BOMFormat    string       `json:"bomFormat"`
	SpecVersion  string       `json:"specVersion"`
	SerialNumber string       `json:"serialNumber"`
	Version      int          `json:"version"`
	Metadata     Metadata     `json:"metadata"`
	Components   []Component  `json:"components"`
	Dependencies []Dependency `json:"dependencies"`
}

// Metadata names the artifact the document is about.
type Metadata struct {
	Timestamp string    `json:"timestamp"`
	Tools     Tools     `json:"tools"`
	Component Component `json:"component"`
}

// Tools lists what produced the document.
type Tools struct {
	Components []Component `json:"components"`
}

// Component is a CycloneDX component.
type Component struct {
	Type       string     `json:"type"`
	BOMRef     string     `json:"bom-ref,omitempty"`
	Name       string     `json:"name"`
	Version    string     `json:"version,omitempty"`
	PURL       string     `json:"purl,omitempty"`
	Hashes     []Hash     `json:"hashes,omitempty"`
	Properties []Property `json:"properties,omitempty"`
}

// Hash is a CycloneDX hash.
type Hash struct {
	Alg     string `json:"alg"`
	Content string `json:"content"`
}

// Property is a CycloneDX name/value property.
type Property struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Dependency is one edge list of the dependency graph.
type Dependency struct {
	Ref       string   `json:"ref"`
	DependsOn []string `json:"dependsOn,omitempty"`
}

// Generate returns the document for a as indented JSON.
func Generate(bi *debug.BuildInfo, a Artifact) ([]byte, error) {
	if a.Name == "" || a.Version == "" || a.PURL == "" || a.SHA256 == "" || a.BinarySHA256 == "" {
		return nil, fmt.Errorf("sbom: artifact name, version, purl and hashes are required")
	}
	if bi.Main.Path == "" {
		return nil, fmt.Errorf("sbom: the binary has no main module")
	}
	binRef := golangPURL(bi.Main.Path, a.Version)
	bin := Component{
		Type: "application", BOMRef: binRef, Name: bi.Main.Path, Version: a.Version, PURL: binRef,
		Hashes:     []Hash{{"SHA-256", a.BinarySHA256}},
		Properties: []Property{{"keepwatch:path", a.Binary}, {"golang:toolchain", bi.GoVersion}},
	}
	if a.Commit != "" {
		bin.Properties = append(bin.Properties, Property{"keepwatch:commit", a.Commit})
	}
	for _, s := range bi.Settings {
		bin.Properties = append(bin.Properties, Property{"golang:build:" + s.Key, s.Value})
	}
	std := Component{Type: "library", Name: "std", Version: bi.GoVersion, PURL: golangPURL("std", bi.GoVersion)}
	std.BOMRef = std.PURL
	comps := []Component{bin, std}
	deps := []string{std.BOMRef}
	for _, m := range bi.Deps {
		c := module(m)
		comps = append(comps, c)
		deps = append(deps, c.BOMRef)
	}
	sort.Slice(comps[2:], func(i, j int) bool { return comps[2+i].BOMRef < comps[2+j].BOMRef })
	sort.Strings(deps)

	art := Component{
		Type: "application", BOMRef: a.PURL, Name: a.Name, Version: a.Version, PURL: a.PURL,
		Hashes:     []Hash{{"SHA-256", a.SHA256}},
		Properties: []Property{{"keepwatch:file", a.File}},
	}
	doc := Document{
		BOMFormat: "CycloneDX", SpecVersion: "1.5", SerialNumber: "urn:uuid:" + uuidOf(a.SHA256), Version: 1,
		Metadata: Metadata{
			Timestamp: a.Time.UTC().Format(time.RFC3339),
			Tools:     Tools{Components: []Component{{Type: "application", Name: "keepwatch scripts/sbom"}}},
			Component: art,
		},
		Components:   comps,
		Dependencies: []Dependency{{Ref: art.BOMRef, DependsOn: []string{binRef}}, {Ref: binRef, DependsOn: deps}},
	}
	for _, c := range comps[1:] {
		doc.Dependencies = append(doc.Dependencies, Dependency{Ref: c.BOMRef})
	}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// module describes a linked module; a replaced one as what was linked.
func module(m *debug.Module) Component {
	path, version, sum := m.Path, m.Version, m.Sum
	var props []Property
	if r := m.Replace; r != nil {
		props = append(props, Property{"golang:replaces", m.Path + "@" + m.Version})
		path, version, sum = r.Path, r.Version, r.Sum
	}
	c := Component{Type: "library", Name: path, Version: version, PURL: golangPURL(path, version), Properties: props}
	c.BOMRef = c.PURL
	if h, ok := h1Hex(sum); ok {
		// The go.sum hash: SHA-256 over the module's file list, as
		// cyclonedx-gomod records it.
		c.Hashes = []Hash{{"SHA-256", h}}
		c.Properties = append(c.Properties, Property{"golang:sum", sum})
	}
	return c
}

// golangPURL is the package URL of a Go module (purl-spec type golang).
func golangPURL(path, version string) string {
	p := "pkg:golang/" + strings.ReplaceAll(escapePath(path), "%2F", "/")
	if version != "" {
		p += "@" + escapePath(version)
	}
	return p + "?type=module"
}

func escapePath(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', strings.ContainsRune(".-_~/", r):
			b.WriteRune(r)
		default:
			for _, c := range []byte(string(r)) {
				fmt.Fprintf(&b, "%%%02X", c)
			}
		}
	}
	return b.String()
}

func h1Hex(sum string) (string, bool) {
	raw, ok := strings.CutPrefix(sum, "h1:")
	if !ok {
		return "", false
	}
	b, err := base64.StdEncoding.DecodeString(raw)
	if err != nil || len(b) != sha256.Size {
		return "", false
	}
	return hex.EncodeToString(b), true
}

// uuidOf derives the document's serial number from the artifact's hash
// (a name-based UUID), so the same artifact gets the same serial number.
func uuidOf(hexSum string) string {
	h := sha256.Sum256([]byte("keepwatch sbom " + hexSum))
	h[6] = h[6]&0x0f | 0x50
	h[8] = h[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16])
}
