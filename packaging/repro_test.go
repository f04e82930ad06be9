package packaging

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"keepwatch/internal/sbom"
)

func TestTwoBuildsOfOneCommitAreIdentical(t *testing.T) {
	b := artifacts(t)
	list := func(dir string) []string {
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		return names
	}
	deb, msi := artifactNames(v1)
	want := []string{"SHA256SUMS", msi, msi + ".cdx.json", deb, deb + ".cdx.json"}
	sort.Strings(want)
	if got := list(b.a); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("dist holds %v, want %v", got, want)
	}
	for _, name := range want {
		x, _ := os.ReadFile(filepath.Join(b.a, name))
		y, _ := os.ReadFile(filepath.Join(b.b, name))
		if !bytes.Equal(x, y) {
			t.Errorf("%s differs between two builds of the same commit (%d and %d bytes)", name, len(x), len(y))
		}
	}
	// Another version is another package, not the same bytes relabelled.
	deb2, _ := artifactNames(v2)
	if fileSHA256(t, filepath.Join(b.a, deb)) == fileSHA256(t, filepath.Join(b.c, deb2)) {
		t.Error("two versions built the same package")
	}
}

func TestChecksumsCoverEveryArtifact(t *testing.T) {
	b := artifacts(t)
	f, err := os.Open(filepath.Join(b.a, "SHA256SUMS"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	listed := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		sum, name, ok := strings.Cut(sc.Text(), "  ")
		if !ok {
			t.Fatalf("not sha256sum's format: %q", sc.Text())
		}
		listed[name] = true
		if got := fileSHA256(t, filepath.Join(b.a, name)); got != sum {
			t.Errorf("%s: SHA256SUMS says %s, the file is %s", name, sum, got)
		}
	}
	deb, msi := artifactNames(v1)
	for _, name := range []string{deb, msi, deb + ".cdx.json", msi + ".cdx.json"} {
		if !listed[name] {
			t.Errorf("SHA256SUMS does not list %s", name)
		}
	}
	// sha256sum -c, as a user would check a download.
	cmd := run(t, "bash", "-c", "cd "+b.a+" && sha256sum -c SHA256SUMS")
	if strings.Count(cmd, ": OK") != len(listed) {
		t.Errorf("sha256sum -c:\n%s", cmd)
	}
}

// The SBOM lists exactly the modules `go version -m` finds in the binary
// the artifact installs.
func TestSBOMDescribesTheShippedBinary(t *testing.T) {
	b := artifacts(t)
	deb, msi := artifactNames(v1)
	dir := t.TempDir()
	run(t, "dpkg-deb", "-x", filepath.Join(b.a, deb), filepath.Join(dir, "deb"))
	run(t, "msiextract", "-C", filepath.Join(dir, "msi"), filepath.Join(b.a, msi))
	exe := findFile(t, filepath.Join(dir, "msi"), "keepwatch.exe")

	for _, c := range []struct{ artifact, binary, purl string }{
		{deb, filepath.Join(dir, "deb", "usr", "bin", "keepwatch"), "pkg:deb/keepwatch@1.0.0?arch=amd64"},
		{msi, exe, "pkg:generic/keepwatch-agent@1.0.0?arch=x64"},
	} {
		raw, err := os.ReadFile(filepath.Join(b.a, c.artifact+".cdx.json"))
		if err != nil {
			t.Fatal(err)
		}
		var doc sbom.Document
		if err := json.Unmarshal(raw, &doc); err != nil {
			t.Fatalf("%s: %v", c.artifact, err)
		}
		if doc.BOMFormat != "CycloneDX" || doc.SpecVersion != "1.5" || !strings.HasPrefix(doc.SerialNumber, "urn:uuid:") {
			t.Errorf("%s: header %s %s %s", c.artifact, doc.BOMFormat, doc.SpecVersion, doc.SerialNumber)
		}
		if doc.Metadata.Timestamp != "2025-11-30T00:00:00Z" {
			t.Errorf("%s: timestamp %s, want SOURCE_DATE_EPOCH", c.artifact, doc.Metadata.Timestamp)
		}
		m := doc.Metadata.Component
		if m.PURL != c.purl || len(m.Hashes) != 1 || m.Hashes[0].Content != fileSHA256(t, filepath.Join(b.a, c.artifact)) {
			t.Errorf("%s: describes %+v", c.artifact, m)
		}

		// go version -m: "\tdep\tpath\tversion\th1:…" (and "=>" for a
		// replacement).
		want := map[string]bool{}
		for _, line := range strings.Split(run(t, "go", "version", "-m", c.binary), "\n") {
			f := strings.Fields(line)
			if len(f) >= 3 && (f[0] == "dep" || f[0] == "=>") {
				want["pkg:golang/"+f[1]+"@"+f[2]+"?type=module"] = true
			}
		}
		if len(want) < 5 {
			t.Fatalf("go version -m found %d modules in %s", len(want), c.binary)
		}
		got := map[string]bool{}
		var binHash string
		for _, comp := range doc.Components {
			switch {
			case comp.Name == "keepwatch":
				binHash = comp.Hashes[0].Content
			case comp.Name != "std":
				got[comp.PURL] = true
			}
		}
		for p := range want {
			if !got[p] {
				t.Errorf("%s: the SBOM lacks %s", c.artifact, p)
			}
		}
		for p := range got {
			if !want[p] {
				t.Errorf("%s: the SBOM lists %s, which is not in the binary", c.artifact, p)
			}
		}
		if binHash != fileSHA256(t, c.binary) {
			t.Errorf("%s: binary hash %s is not the shipped binary's", c.artifact, binHash)
		}
	}
}

func findFile(t *testing.T, dir, name string) string {
	t.Helper()
	var found string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && d.Name() == name {
			found = p
		}
		return nil
	})
	if found == "" {
		t.Fatalf("no %s under %s", name, dir)
	}
	return found
}
