package packaging

import (
	"debug/buildinfo"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"keepwatch/internal/agent"
)

// msiTable exports one table of an MSI with msiinfo: a row per record,
// keyed by column name. A table that does not exist fails t.
func msiTable(t *testing.T, msi, table string) []map[string]string {
	t.Helper()
	out := run(t, "msiinfo", "export", msi, table)
	lines := strings.Split(strings.TrimRight(strings.ReplaceAll(out, "\r\n", "\n"), "\n"), "\n")
	if len(lines) < 3 {
		t.Fatalf("%s: no table %s:\n%s", msi, table, out)
	}
	cols := strings.Split(lines[0], "\t")
	var rows []map[string]string
	for _, l := range lines[3:] {
		f := strings.Split(l, "\t")
		row := map[string]string{}
		for i, c := range cols {
			if i < len(f) {
				row[c] = f[i]
			}
		}
		rows = append(rows, row)
	}
	return rows
}

// msiRow returns the one row whose column col is v.
func msiRow(t *testing.T, rows []map[string]string, col, v string) map[string]string {
	t.Helper()
	var found map[string]string
	for _, r := range rows {
		if r[col] == v {
			if found != nil {
				t.Fatalf("two rows with %s = %s", col, v)
			}
			found = r
		}
	}
	if found == nil {
		t.Fatalf("no row with %s = %s in %v", col, v, rows)
	}
	return found
}

func TestMSIInstallsTheAgentService(t *testing.T) {
	b := artifacts(t)
	_, name := artifactNames(v1)
	msi := filepath.Join(b.a, name)

	props := map[string]string{}
	for _, r := range msiTable(t, msi, "Property") {
		props[r["Property"]] = r["Value"]
	}
	for k, v := range map[string]string{
		"ProductName": "keepwatch agent", "ProductVersion": "1.0.0", "Manufacturer": "keepwatch", "ALLUSERS": "1",
		"UpgradeCode": "{6F0E5C4A-3B2D-4E1F-9A8B-7C6D5E4F3A2B}", "MsiHiddenProperties": "KEEPWATCH_KEY",
	} {
		if props[k] != v {
			t.Errorf("property %s = %q, want %q", k, props[k], v)
		}
	}
	if !regexp.MustCompile(`^\{[0-9A-F]{8}-[0-9A-F]{4}-5[0-9A-F]{3}-[89AB][0-9A-F]{3}-[0-9A-F]{12}\}$`).MatchString(props["ProductCode"]) {
		t.Errorf("ProductCode %q is not derived from the version", props["ProductCode"])
	}
	// Properties given on msiexec's command line reach the elevated part
	// of the installation only when declared secure.
	secure := ";" + props["SecureCustomProperties"] + ";"
	for _, p := range []string{"KEEPWATCH_SERVER", "KEEPWATCH_SLC", "KEEPWATCH_KEY", "KEEPWATCH_NAME", "KEEPWATCH_CONSENT", "KEEPWATCH_CA"} {
		if !strings.Contains(secure, ";"+p+";") {
			t.Errorf("%s is not in SecureCustomProperties %q", p, props["SecureCustomProperties"])
		}
	}

	// The service: own process, automatic start, LocalSystem, with the
	// state directory, the configuration and the enrollment file.
	svc := msiRow(t, msiTable(t, msi, "ServiceInstall"), "Name", "keepwatch-agent")
	for k, v := range map[string]string{"ServiceType": "16", "StartType": "2", "ErrorControl": "1", "StartName": "", "Component_": "Binary", "DisplayName": "keepwatch agent"} {
		if svc[k] != v {
			t.Errorf("ServiceInstall %s = %q, want %q", k, svc[k], v)
		}
	}
	if want := `agent run --state "[STATEDIR]." --config "[STATEDIR]config.json" --enroll-file "[STATEDIR]enroll.ini"`; svc["Arguments"] != want {
		t.Errorf("service arguments %q, want %q", svc["Arguments"], want)
	}
	// Started at installation, stopped at installation (upgrades) and
	// removal, deleted at removal, waiting for each.
	ctl := msiRow(t, msiTable(t, msi, "ServiceControl"), "Name", "keepwatch-agent")
	if ctl["Event"] != "163" || ctl["Wait"] != "1" {
		t.Errorf("ServiceControl %v, want Event 163 (start+stop on install, stop+delete on uninstall), Wait 1", ctl)
	}
	// Delayed automatic start and restarts after any failure, as `agent
	// install-service` does (10 s, 30 s, then 2 min; reset after a day).
	cfg := msiTable(t, msi, "MsiServiceConfig")
	if r := msiRow(t, cfg, "ConfigType", "3"); r["Name"] != "keepwatch-agent" || r["Argument"] != "1" {
		t.Errorf("delayed automatic start: %v", r)
	}
	if r := msiRow(t, cfg, "ConfigType", "4"); r["Name"] != "keepwatch-agent" || r["Argument"] != "1" {
		t.Errorf("failure actions on non-crash failures: %v", r)
	}
	fa := msiRow(t, msiTable(t, msi, "MsiServiceConfigFailureActions"), "Name", "keepwatch-agent")
	if fa["Actions"] != "1[~]1[~]1" || fa["DelayActions"] != "10000[~]30000[~]120000" || fa["ResetPeriod"] != "86400" {
		t.Errorf("recovery actions %v", fa)
	}
	seq := map[string]string{}
	for _, r := range msiTable(t, msi, "InstallExecuteSequence") {
		seq[r["Action"]] = r["Sequence"]
	}
	order := []string{"RemoveIniValues", "CreateFolders", "InstallFiles", "WriteIniValues", "InstallServices", "MsiConfigureServices", "StartServices"}
	for i := 1; i < len(order); i++ {
		if seq[order[i-1]] == "" || seq[order[i]] == "" || atoi(t, seq[order[i-1]]) >= atoi(t, seq[order[i]]) {
			t.Errorf("%s (%s) must run before %s (%s)", order[i-1], seq[order[i-1]], order[i], seq[order[i]])
		}
	}

	// Where things go.
	dirs := msiTable(t, msi, "Directory")
	if r := msiRow(t, dirs, "Directory", "STATEDIR"); r["Directory_Parent"] != "CommonAppDataFolder" || r["DefaultDir"] != "keepwatch-agent" {
		t.Errorf("state directory %v, want C:\\ProgramData\\keepwatch-agent", r)
	}
	if r := msiRow(t, dirs, "Directory", "INSTALLDIR"); r["Directory_Parent"] != "ProgramFiles64Folder" {
		t.Errorf("install directory %v", r)
	}
	files := msiTable(t, msi, "File")
	if r := msiRow(t, files, "File", "keepwatch.exe"); r["Component_"] != "Binary" || !strings.HasSuffix(r["FileName"], "keepwatch.exe") {
		t.Errorf("keepwatch.exe %v", r)
	}
	msiRow(t, files, "File", "config.json")
	comps := msiTable(t, msi, "Component")
	for id, attrs := range map[string]string{"Binary": "256", "StateDir": "272", "Config": "400", "Enroll": "272"} {
		// 256: 64-bit; 16: permanent (uninstalling never deletes the
		// agent's state or configuration); 128: never overwritten.
		if r := msiRow(t, comps, "Component", id); r["Attributes"] != attrs {
			t.Errorf("component %s attributes %s, want %s", id, r["Attributes"], attrs)
		}
	}
	if r := msiRow(t, comps, "Component", "Enroll"); r["Condition"] != "KEEPWATCH_SERVER" {
		t.Errorf("the enrollment file is written without KEEPWATCH_SERVER: %v", r)
	}

	// SYSTEM and Administrators only, inherited by what the agent creates.
	acl := msiRow(t, msiTable(t, msi, "MsiLockPermissionsEx"), "LockObject", "STATEDIR")
	if acl["Table"] != "CreateFolder" || acl["SDDLText"] != "D:PAI(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)" {
		t.Errorf("state directory ACL %v", acl)
	}
	msiRow(t, msiTable(t, msi, "CreateFolder"), "Directory_", "STATEDIR")

	// Consent is required for an enrollment; a newer version is never
	// replaced by an older one; the same version again replaces itself.
	conds := map[string]bool{}
	for _, r := range msiTable(t, msi, "LaunchCondition") {
		conds[r["Condition"]] = true
	}
	for _, c := range []string{`Installed OR NOT KEEPWATCH_SERVER OR KEEPWATCH_CONSENT = "1"`, "NOT WIX_DOWNGRADE_DETECTED", "Installed OR NOT KEEPWATCH_SERVER OR (KEEPWATCH_SLC AND KEEPWATCH_KEY)"} {
		if !conds[c] {
			t.Errorf("no launch condition %q in %v", c, conds)
		}
	}
	up := msiRow(t, msiTable(t, msi, "Upgrade"), "ActionProperty", "WIX_UPGRADE_DETECTED")
	if up["VersionMax"] != "1.0.0" || up["Attributes"] != "513" || up["UpgradeCode"] != props["UpgradeCode"] {
		t.Errorf("upgrade %v, want every version up to 1.0.0 inclusive replaced", up)
	}

	// The enrollment file the installer writes is one the agent reads.
	values := map[string]string{
		"[KEEPWATCH_SERVER]": "https://keepwatch.example.com:8443", "[KEEPWATCH_SLC]": "M01-2345-6789", "[KEEPWATCH_KEY]": "s3cret",
		"[KEEPWATCH_NAME]": "", "[KEEPWATCH_CONSENT]": "1", "[KEEPWATCH_CA]": `C:\keepwatch\cert.pem`,
	}
	ini := "[enroll]\r\n"
	for _, r := range msiTable(t, msi, "IniFile") {
		if r["FileName"] != "enroll.ini" || r["DirProperty"] != "STATEDIR" || r["Section"] != "enroll" || r["Component_"] != "Enroll" || r["Action"] != "0" {
			t.Errorf("IniFile row %v", r)
		}
		v, ok := values[r["Value"]]
		if !ok {
			t.Errorf("IniFile writes %q", r["Value"])
		}
		ini += r["Key"] + "=" + v + "\r\n"
	}
	path := filepath.Join(t.TempDir(), "enroll.ini")
	os.WriteFile(path, []byte(ini), 0o600)
	o, ok, err := agent.ReadEnrollFile(path)
	want := agent.EnrollOptions{Server: "https://keepwatch.example.com:8443", SLC: "M01-2345-6789", Key: "s3cret", Consent: true, CAFile: `C:\keepwatch\cert.pem`}
	if err != nil || !ok || o != want {
		t.Errorf("the agent reads the installer's file as %+v ok=%v err=%v, want %+v", o, ok, err, want)
	}

	// The packaged keepwatch.exe is the Windows build (its version cannot
	// be read here: -trimpath keeps -ldflags out of the build information;
	// the Debian package's binary, built the same way, is run instead).
	dir := t.TempDir()
	run(t, "msiextract", "-C", dir, msi)
	bi, err := buildinfo.ReadFile(findFile(t, dir, "keepwatch.exe"))
	if err != nil {
		t.Fatal(err)
	}
	settings := map[string]string{}
	for _, s := range bi.Settings {
		settings[s.Key] = s.Value
	}
	if settings["GOOS"] != "windows" || settings["GOARCH"] != "amd64" || settings["CGO_ENABLED"] != "0" || settings["-trimpath"] != "true" {
		t.Errorf("keepwatch.exe build settings %v", settings)
	}
}

func TestMSIVersionsGetTheirOwnCodesAndTheSourcesDate(t *testing.T) {
	b := artifacts(t)
	_, m1 := artifactNames(v1)
	_, m2 := artifactNames(v2)
	summary := func(msi string) map[string]string {
		cmd := exec.Command("msiinfo", "suminfo", msi)
		cmd.Env = append(os.Environ(), "TZ=UTC")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("msiinfo suminfo: %v\n%s", err, out)
		}
		m := map[string]string{}
		for _, l := range strings.Split(string(out), "\n") {
			if k, v, ok := strings.Cut(l, ": "); ok {
				m[k] = v
			}
		}
		return m
	}
	s1, s2 := summary(filepath.Join(b.a, m1)), summary(filepath.Join(b.c, m2))
	for _, s := range []map[string]string{s1, s2} {
		if s["Created"] != "Sun Nov 30 00:00:00 2025" || s["Last saved"] != s["Created"] {
			t.Errorf("summary times %q / %q, want SOURCE_DATE_EPOCH", s["Created"], s["Last saved"])
		}
		if s["Template"] != "x64;1033" || s["Version"] != "500 (1f4)" {
			t.Errorf("summary %v", s)
		}
	}
	if s1["Revision number (UUID)"] == "" || s1["Revision number (UUID)"] == s2["Revision number (UUID)"] {
		t.Errorf("package codes %q and %q: each version needs its own", s1["Revision number (UUID)"], s2["Revision number (UUID)"])
	}
	p1 := msiRow(t, msiTable(t, filepath.Join(b.a, m1), "Property"), "Property", "ProductCode")["Value"]
	p2 := msiRow(t, msiTable(t, filepath.Join(b.c, m2), "Property"), "Property", "ProductCode")["Value"]
	if p1 == p2 {
		t.Errorf("both versions have product code %s", p1)
	}
}

func TestMSIAndItsExecutableAreSignedWhenACertificateIsGiven(t *testing.T) {
	b := artifacts(t)
	_, m1 := artifactNames(v1)
	_, m2 := artifactNames(v2)
	verify := func(file, ca string) (string, error) {
		out, err := exec.Command("osslsigncode", "verify", "-CAfile", ca, "-in", file).CombinedOutput()
		return string(out), err
	}
	signed := filepath.Join(b.a, m1)
	if out, err := verify(signed, b.signer.ca); err != nil || !strings.Contains(out, "Signature verification: ok") {
		t.Errorf("the signed MSI does not verify against its CA: %v\n%s", err, out)
	} else if !strings.Contains(out, "keepwatch test publisher") {
		t.Errorf("the signature does not name the publisher:\n%s", out)
	}
	if out, err := verify(signed, b.signer.otherCA); err == nil {
		t.Errorf("the MSI verifies against a CA that never signed it:\n%s", out)
	}
	if out, err := verify(filepath.Join(b.c, m2), b.signer.ca); err == nil {
		t.Errorf("an MSI built without a certificate verifies:\n%s", out)
	}

	// One changed byte in the packaged program breaks the signature.
	raw, err := os.ReadFile(signed)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	run(t, "msiextract", "-C", dir, signed)
	exe := findFile(t, dir, "keepwatch.exe")
	if out, err := verify(exe, b.signer.ca); err != nil || !strings.Contains(out, "Signature verification: ok") {
		t.Errorf("keepwatch.exe inside the MSI is not signed: %v\n%s", err, out)
	}
	tampered := filepath.Join(dir, "tampered.msi")
	i := len(raw) / 2
	raw[i] ^= 0xFF
	os.WriteFile(tampered, raw, 0o644)
	if out, err := verify(tampered, b.signer.ca); err == nil {
		t.Errorf("a tampered MSI verifies:\n%s", out)
	}
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n := 0
	for _, c := range s {
		if c < '0' || c > '9' {
			t.Fatalf("not a number: %q", s)
		}
		n = n*10 + int(c-'0')
	}
	return n
}
