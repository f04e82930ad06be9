package web_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/zitadel/oidc/v3/example/server/exampleop"
	"github.com/zitadel/oidc/v3/example/server/storage"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
	"golang.org/x/text/language"
)

// An OpenID provider in the test process: zitadel's OP package with its
// example storage and login page, serving the people below. keepwatch
// reaches it over loopback HTTP like any identity provider.

const (
	opClientID     = "keepwatch"
	opClientSecret = "op-client-secret"
	opPassword     = "op password 1"
)

// opUser is a person at the company's identity provider.
type opUser struct {
	id, username, email string
	verified            bool
	groups              []string
}

var opUsers = []opUser{
	{"u-olga", "olga", "olga@alice.example", true, []string{"staff", "kw-owners"}},
	{"u-tom", "tom", "tom@alice.example", true, []string{"staff"}},
	{"u-vic", "vic", "vic@alice.example", false, nil},                  // e-mail not verified
	{"u-mal", "mal", "mal@elsewhere.example", true, []string{"staff"}}, // a domain alice does not allow
	{"u-bo", "bo", "owner.bob@bob.example", true, nil},                 // bob's owner's address
}

type opUserStore struct{ users map[string]*storage.User }

func (s opUserStore) GetUserByID(id string) *storage.User { return s.users[id] }
func (s opUserStore) GetUserByUsername(name string) *storage.User {
	for _, u := range s.users {
		if u.Username == name {
			return u
		}
	}
	return nil
}
func (s opUserStore) ExampleClientID() string { return "service" }

// opStorage adds the people's groups claim to what the example storage
// says about them, in the ID token and at the userinfo endpoint.
type opStorage struct{ *storage.Storage }

func groupsOf(subject string) []string {
	for _, u := range opUsers {
		if u.id == subject {
			return u.groups
		}
	}
	return nil
}

func (s opStorage) SetUserinfoFromRequest(ctx context.Context, ui *oidc.UserInfo, token op.IDTokenRequest, scopes []string) error {
	if err := s.Storage.SetUserinfoFromRequest(ctx, ui, token, scopes); err != nil {
		return err
	}
	if g := groupsOf(token.GetSubject()); g != nil {
		ui.AppendClaims("groups", g)
	}
	return nil
}

func (s opStorage) SetUserinfoFromToken(ctx context.Context, ui *oidc.UserInfo, tokenID, subject, origin string) error {
	if err := s.Storage.SetUserinfoFromToken(ctx, ui, tokenID, subject, origin); err != nil {
		return err
	}
	if g := groupsOf(subject); g != nil {
		ui.AppendClaims("groups", g)
	}
	return nil
}

// newOpenIDProvider starts a provider on loopback whose one client,
// keepwatch, may redirect to redirectURI. It returns the issuer.
func newOpenIDProvider(t testing.TB, redirectURI string) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	issuer := "http://" + ln.Addr().String()
	users := map[string]*storage.User{}
	for _, u := range opUsers {
		users[u.id] = &storage.User{ID: u.id, Username: u.username, Password: opPassword, FirstName: u.username, LastName: "Test",
			Email: u.email, EmailVerified: u.verified, PreferredLanguage: language.English}
	}
	clients := map[string]*storage.Client{opClientID: storage.WebClient(opClientID, opClientSecret, redirectURI)}
	st := opStorage{storage.NewStorageWithClients(opUserStore{users}, clients)}
	srv := &httptest.Server{Listener: ln, Config: &http.Server{Handler: exampleop.SetupServer(issuer, st, nil, false)}}
	srv.Start()
	t.Cleanup(srv.Close)
	return issuer
}
