package web_test

import (
	"bytes"
	"context"
	"net/url"
	"strings"
	"testing"

	"keepwatch/internal/secret"
	"keepwatch/internal/store"
)

// A re-enrollment waiting for approval shows on the registration center;
// a technician approves one (the server switches to the new key) and
// rejects the other (it keeps its key); a viewer sees them but cannot
// decide.
func TestReenrollmentsAreDecidedOnTheRegistrationCenter(t *testing.T) {
	f := newFixture(t, fixtureOptions{dialect: store.SQLite})
	approve, reject := pendingReenrollments(t, f)
	ctx := context.Background()
	viewer := f.session("alice-viewer")
	status, _, body := f.do(viewer, "GET", "/registrations", nil)
	if status != 200 || !strings.Contains(body, "Re-enrollments waiting for approval") || strings.Contains(body, "/approve") {
		t.Fatalf("viewer's registration center: %d, section %v, buttons %v", status, strings.Contains(body, "waiting for approval"), strings.Contains(body, "/approve"))
	}
	if status, _, _ := f.do(viewer, "POST", "/registrations/reenrollments/"+approve+"/approve", url.Values{}); status != 403 {
		t.Fatalf("viewer approving: %d", status)
	}
	if _, _, body := f.do(viewer, "GET", "/", nil); !strings.Contains(body, `id="reenrollment-notice"`) || !strings.Contains(body, "2 server names") {
		t.Fatal("the overview does not say that re-enrollments wait")
	}
	tech := f.session("alice-technician")
	if _, _, body := f.do(tech, "GET", "/registrations", nil); !strings.Contains(body, `action="/registrations/reenrollments/`+approve+`/approve"`) {
		t.Fatal("the technician has no approve button")
	}
	servers, _ := f.a.Store.Servers(ctx, f.alice, aliceSLC)
	if status, hdr, _ := f.do(tech, "POST", "/registrations/reenrollments/"+approve+"/approve", url.Values{}); status != 303 || !strings.Contains(hdr.Get("Location"), "reenrollmentApproved") {
		t.Fatalf("approve: %d %s", status, hdr.Get("Location"))
	}
	rec, err := f.a.Store.ServerRecord(ctx, servers[0].ID)
	if err != nil || !bytes.Equal(rec.Key, bytes.Repeat([]byte{3}, 32)) || rec.PendingKey != nil {
		t.Fatalf("approved server: key switched %v, pending %x, %v", bytes.Equal(rec.Key, bytes.Repeat([]byte{3}, 32)), rec.PendingKey, err)
	}
	if status, _, _ := f.do(tech, "POST", "/registrations/reenrollments/"+reject+"/reject", url.Values{}); status != 303 {
		t.Fatalf("reject: %d", status)
	}
	others, _ := f.a.Store.Servers(ctx, f.alice, aliceOKSLC)
	if rec, _ := f.a.Store.ServerRecord(ctx, others[0].ID); bytes.Equal(rec.Key, bytes.Repeat([]byte{3}, 32)) || rec.PendingKey != nil {
		t.Fatal("the rejected key was taken or kept")
	}
	if _, _, body := f.do(tech, "GET", "/registrations", nil); strings.Contains(body, "Re-enrollments waiting for approval") {
		t.Fatal("decided requests still wait")
	}
	if _, _, body := f.do(tech, "GET", "/", nil); strings.Contains(body, `id="reenrollment-notice"`) {
		t.Fatal("the overview still announces decided requests")
	}
	log, _ := f.a.Store.AuditLog(ctx, f.alice, 10)
	var seen []string
	for _, e := range log {
		seen = append(seen, e.Action)
	}
	if got := strings.Join(seen, " "); !strings.Contains(got, "reenrollment.approve") || !strings.Contains(got, "reenrollment.reject") {
		t.Fatalf("audit: %s", got)
	}
}

// An owner issues a new enrollment key on the registration center: shown
// once, stored as its hash; then revokes it. Another integrator's SLC is
// refused like an unknown one.
func TestOwnersIssueAndRevokeEnrollmentKeysOnTheRegistrationCenter(t *testing.T) {
	f := newFixture(t, fixtureOptions{dialect: store.SQLite})
	ctx := context.Background()
	owner := f.session("alice-owner")
	status, hdr, _ := f.do(owner, "POST", "/registrations/enrollment-key", url.Values{"slc": {strings.ToLower(aliceSLC)}})
	if status != 303 {
		t.Fatalf("issue: %d", status)
	}
	_, _, body := f.do(owner, "GET", hdr.Get("Location"), nil)
	i := strings.Index(body, `id="new-key" readonly value="`)
	if i < 0 {
		t.Fatal("the new key is not shown")
	}
	key, _, _ := strings.Cut(body[i+len(`id="new-key" readonly value="`):], `"`)
	_, hash, err := f.a.Store.EnrollmentInfo(ctx, aliceSLC)
	if err != nil || !strings.HasPrefix(key, "kwe_") || !bytes.Equal(hash, secret.Hash(key)) {
		t.Fatalf("issued key %q does not match the stored hash: %v", key, err)
	}
	if _, _, again := f.do(owner, "GET", "/registrations", nil); strings.Contains(again, key) {
		t.Fatal("the key is shown twice")
	}
	if status, _, _ := f.do(f.session("alice-technician"), "POST", "/registrations/enrollment-key", url.Values{"slc": {aliceSLC}}); status != 403 {
		t.Fatalf("technician issuing a key: %d", status)
	}
	if status, _, _ := f.do(f.session("bob-owner"), "POST", "/registrations/enrollment-key/revoke", url.Values{"slc": {aliceSLC}}); status != 404 {
		t.Fatalf("bob revoking alice's key: %d", status)
	}
	if status, _, _ := f.do(owner, "POST", "/registrations/enrollment-key/revoke", url.Values{"slc": {aliceSLC}}); status != 303 {
		t.Fatalf("revoke: %d", status)
	}
	if _, hash, _ := f.a.Store.EnrollmentInfo(ctx, aliceSLC); len(hash) != 0 {
		t.Fatal("the key is still there after revoke")
	}
}
