package demo_test

import (
	"context"
	"testing"
	"time"

	"keepwatch"
	"keepwatch/internal/demo"
	"keepwatch/internal/store"
	"keepwatch/internal/testutil"
)

// The demo's technician is a real user of the demo integrator: what it
// does is shown by the e-mail of a user that exists, on every page.
func TestDemoActsAsARealTechnician(t *testing.T) {
	ctx := context.Background()
	st := testutil.Open(t, store.SQLite)
	today := keepwatch.DateOf(time.Now())
	for run := 1; run <= 2; run++ { // a second run on the same data reuses it
		_, sites, err := demo.Setup(ctx, st, today)
		if err != nil {
			t.Fatal(err)
		}
		users, err := st.Users(ctx, sites.IntegratorID)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, u := range users {
			if u.Email == demo.TechnicianEmail {
				n++
				if u.Role != keepwatch.RoleTechnician || u.ID != sites.TechnicianID {
					t.Fatalf("run %d: technician user %+v (id %d)", run, u, sites.TechnicianID)
				}
			}
		}
		if n != 1 {
			t.Fatalf("run %d: %d technician users", run, n)
		}
		if sites.Technician.Actor != "user:"+demo.TechnicianEmail || sites.Technician.IntegratorID != sites.IntegratorID || sites.Technician.Role != keepwatch.RoleTechnician {
			t.Fatalf("run %d: technician principal %+v", run, sites.Technician)
		}
	}
	// The maintenance window the demo sets is the technician's.
	_, sites, err := demo.Setup(ctx, st, today)
	if err != nil {
		t.Fatal(err)
	}
	active, err := st.ActiveMaintenance(ctx, sites.IntegratorID, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(active) == 0 {
		t.Fatal("no maintenance window")
	}
	for _, m := range active {
		if keepwatch.ActorName(m.CreatedBy) != demo.TechnicianEmail {
			t.Fatalf("window set by %q", m.CreatedBy)
		}
	}
}
