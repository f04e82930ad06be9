package keepwatch_test

import (
	"testing"

	"keepwatch"
)

func TestPasswordPolicyRefusesTheShortTheCommonAndTheObvious(t *testing.T) {
	for pw, ok := range map[string]bool{
		"correct horse battery": true,
		"short":                 false,
		"password1234":          false,
		"Password 1234":         false,
		"aaaaaaaaaaaaaaaa":      false,
		"ann@alice.example":     false,
		"annalice2024":          true, // local part "ann" is too short to matter
		"ñandú über straße":     true,
	} {
		if err := keepwatch.ValidPassword(pw, "ann@alice.example"); (err == nil) != ok {
			t.Errorf("%q: %v", pw, err)
		}
	}
	if err := keepwatch.ValidPassword("olga.petrova!!", "olga.petrova@alice.example"); err == nil {
		t.Error("a password that is the e-mail's local part was accepted")
	}
}

func TestIdentityProviderSettingsAreValidated(t *testing.T) {
	base := keepwatch.OIDCProvider{Issuer: "https://login.alice.example/realms/a/", ClientID: " kw ", Domains: []string{"@Alice.Example", " ", "alice.example"}}
	p, err := base.Validate()
	if err != nil || p.Issuer != "https://login.alice.example/realms/a" || p.ClientID != "kw" || len(p.Domains) != 1 || p.DefaultRole != keepwatch.RoleViewer {
		t.Fatalf("%+v %v", p, err)
	}
	for name, bad := range map[string]keepwatch.OIDCProvider{
		"plain http":        {Issuer: "http://login.alice.example", ClientID: "kw"},
		"credentials":       {Issuer: "https://u:p@login.alice.example", ClientID: "kw"},
		"no client":         {Issuer: "https://login.alice.example"},
		"bad domain":        {Issuer: "https://login.alice.example", ClientID: "kw", Domains: []string{"not a domain"}},
		"map without claim": {Issuer: "https://login.alice.example", ClientID: "kw", RoleMap: map[string]keepwatch.Role{"x": keepwatch.RoleOwner}},
	} {
		if _, err := bad.Validate(); keepwatch.ErrorCode(err) != keepwatch.EINVALID {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := (keepwatch.OIDCProvider{Issuer: "http://127.0.0.1:9000", ClientID: "kw"}).Validate(); err != nil {
		t.Errorf("a loopback issuer over http: %v", err)
	}
	if !p.EmailAllowed("ann@alice.example") || p.EmailAllowed("ann@evil.example") || p.EmailAllowed("ann@sub.alice.example") {
		t.Error("domain check")
	}
}

func TestRoleClaimsMapToTheStrongestRole(t *testing.T) {
	m, err := keepwatch.ParseRoleMap("kw-techs=technician, kw-owners=owner\nstaff=viewer")
	if err != nil {
		t.Fatal(err)
	}
	p := keepwatch.OIDCProvider{RoleClaim: "groups", RoleMap: m}
	for _, c := range []struct {
		claim any
		role  keepwatch.Role
		ok    bool
	}{
		{[]any{"staff", "kw-owners", "kw-techs"}, keepwatch.RoleOwner, true},
		{"kw-techs", keepwatch.RoleTechnician, true},
		{[]any{"other", 3}, "", false},
		{nil, "", false},
	} {
		if role, ok := p.RoleFor(c.claim); role != c.role || ok != c.ok {
			t.Errorf("%v → %q %v", c.claim, role, ok)
		}
	}
	if got := keepwatch.FormatRoleMap(m); got != "kw-owners=owner, kw-techs=technician, staff=viewer" {
		t.Errorf("format %q", got)
	}
	if _, err := keepwatch.ParseRoleMap("admins=root"); err == nil {
		t.Error("an unknown role was accepted")
	}
}
