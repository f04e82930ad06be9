package web_test

import (
	"bytes"
	"context"
	"net/url"
	"strings"
	"testing"

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
	log, _ := f.a.Store.AuditLog(ctx, f.alice, 10)
	var seen []string
	for _, e := range log {
		seen = append(seen, e.Action)
	}
	if got := strings.Join(seen, " "); !strings.Contains(got, "reenrollment.approve") || !strings.Contains(got, "reenrollment.reject") {
		t.Fatalf("audit: %s", got)
	}
}
