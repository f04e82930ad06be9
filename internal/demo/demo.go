// Package demo sets up a demo integrator with thirty installations and
// runs their recording servers in-process with the fleet simulator, so a
// new user sees a living keepwatch within seconds: a dozen sites pinned
// in every state the dashboard knows (errors of each kind, a warning, a
// site offline, one paused, one never reported, one whose customer
// withdrew consent) and the rest healthy, with faults coming and going
// and a technician (a real user of the demo integrator) who acknowledges,
// takes and resolves archive incidents; and
// one licence left unregistered, to try the registration center with.
package demo

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"keepwatch"
	"keepwatch/internal/secret"
	"keepwatch/internal/sim"
	"keepwatch/internal/store"
)

// Names of the demo tenant.
const (
	IntegratorName = "Demo Integrator"
	OwnerEmail     = "demo@keepwatch.example"
	// TechnicianEmail is the demo's technician, a user of the demo
	// integrator who acknowledges, takes and resolves incidents.
	TechnicianEmail = "sam@demo.keepwatch.example"
)

// UnregisteredSLC is a demo licence no integrator holds: the demo offers
// it to try the registration center with.
const UnregisteredSLC = "DEMO-4242-9001"

// Credentials are what the demo prints.
type Credentials struct {
	Email, Password, Token string
	// UnregisteredSLC is licensed but not registered, as a new customer's
	// SLC is before the integrator registers it.
	UnregisteredSLC string
}

// Sites are the demo installations, registered to the demo integrator.
type Sites struct {
	IntegratorID  int64
	Installations []*sim.Installation
	// Technician is who acts on incidents: the demo's technician user.
	Technician   keepwatch.Principal
	TechnicianID int64
}

var customers = []string{
	"Harbor Logistics", "Northgate Mall", "City of Ashford", "Riverside Hospital", "Blue Lake Casino",
	"Metro Transit Depot 4", "Oakwood School District", "Summit Data Center", "Greenfield Farms", "Pinecrest Hotel",
	"Sterling Bank HQ", "Westbrook Airport P3", "Cedar Valley Prison", "Lakeside Stadium", "Iron Works Foundry",
	"Maple Street Pharmacy", "Coastal Port Authority", "Elm Grove Retail Park", "Union Rail Yard", "Silver Creek Mine",
	"Crown Plaza Offices", "Redwood University", "Hillside Water Plant", "Falcon Logistics Hub", "Granite Museum",
	"Bayview Marina", "Orchard Distribution", "Kingsway Car Park", "Willow Care Home", "Starlight Cinema",
}

var products = []string{"XProtect Corporate 2016", "XProtect Expert 2016", "XProtect Enterprise 2013", "XProtect Professional 2013", "Husky M30", "Husky M50", "Husky M10"}

// scenarios pin the first sites' states; the others are left to random
// faults. Every pinned site is Steady, so what it shows stays put.
func scenarios(today keepwatch.Date) []sim.Scenario {
	archive := "Archive " + today.AddDays(-1).String()
	return []sim.Scenario{
		{Conditions: []sim.Item{{Kind: keepwatch.KindStorageFull, Subject: `E:\Recordings`}}},
		{Conditions: []sim.Item{{Kind: keepwatch.KindCameraUnreachable, Subject: "cam-03 Entrance"}}},
		{Conditions: []sim.Item{{Kind: keepwatch.KindMediaDBWriteFailed, Subject: `D:\MediaDatabase`}}},
		{Conditions: []sim.Item{{Kind: keepwatch.KindLicenseExceeded}}},
		{Conditions: []sim.Item{{Kind: keepwatch.KindStorageLow, Subject: `F:\Archive`}}},
		{Events: []sim.Item{{Kind: keepwatch.KindArchiveMoveFailed, Subject: archive}}},
		{Offline: true},
		{EndCarePlus: true},
		{Silent: true},
		{WithdrawConsent: true},
		{Flap: "cam-12 Loading Dock"},
		{Conditions: []sim.Item{{Kind: keepwatch.KindCameraUnreachable, Subject: "cam-07 Parking"}}},
	}
}

// Setup creates (or reuses) the demo integrator, its owner and licences,
// and returns fresh credentials and the sites with fresh enrollment keys.
// It is idempotent on an existing data dir: licences get their Care Plus
// back and new keys, and the servers enroll again under the same names,
// so they keep their identity and history.
func Setup(ctx context.Context, st *store.Store, today keepwatch.Date) (Credentials, *Sites, error) {
	creds := Credentials{Email: OwnerEmail, Password: secret.New("")[:16]}
	in, err := st.IntegratorByName(ctx, IntegratorName)
	if keepwatch.ErrorCode(err) == keepwatch.ENOTFOUND {
		if in, err = st.CreateIntegrator(ctx, IntegratorName); err != nil {
			return creds, nil, err
		}
		if _, err = st.CreateUser(ctx, in.ID, OwnerEmail, secret.HashPassword(creds.Password), keepwatch.RoleOwner); err != nil {
			return creds, nil, err
		}
	} else if err != nil {
		return creds, nil, err
	} else if err := st.SetPassword(ctx, in.ID, OwnerEmail, secret.HashPassword(creds.Password)); err != nil {
		return creds, nil, err
	}
	creds.Token = secret.New("kw_")
	if _, err := st.CreateToken(ctx, in.ID, "demo "+time.Now().UTC().Format(time.RFC3339), keepwatch.RoleOwner, secret.Hash(creds.Token)); err != nil {
		return creds, nil, err
	}
	sites := &Sites{IntegratorID: in.ID}
	if sites.Technician, sites.TechnicianID, err = technician(ctx, st, in.ID); err != nil {
		return creds, nil, err
	}
	pinned := scenarios(today)
	for i, c := range customers {
		s := &sim.Installation{
			SLC: fmt.Sprintf("DEMO-%04d-%04d", 1000+i*37, 7000+i*13), Customer: c, Product: products[i%len(products)],
			Cameras: 16 + 8*(i%5), EnrollmentKey: secret.New("kwe_"),
		}
		if i < len(pinned) {
			s.Scenario = pinned[i]
			s.Scenario.Steady = true
		}
		n := 1 + i%3
		if s.Scenario.Offline {
			n = 3
		}
		for j := 1; j <= n; j++ {
			s.Servers = append(s.Servers, &sim.Creds{Name: fmt.Sprintf("RS-%02d", j)})
		}
		lic := keepwatch.Installation{SLC: s.SLC, Customer: c, Product: s.Product, Cameras: s.Cameras, CarePlusUntil: today.AddDays(30 + 11*i)}
		if i%9 == 4 {
			lic.CarePlusUntil = today.AddDays(12) // ending soon
		}
		_, err := st.CreateInstallation(ctx, lic, secret.Hash(s.EnrollmentKey))
		if keepwatch.ErrorCode(err) == keepwatch.ECONFLICT {
			if err = st.SetCarePlus(ctx, s.SLC, lic.CarePlusUntil); err == nil {
				err = st.SetEnrollmentKey(ctx, s.SLC, secret.Hash(s.EnrollmentKey))
			}
		}
		if err != nil {
			return creds, nil, err
		}
		if err := st.Register(ctx, in.ID, s.SLC); err != nil {
			return creds, nil, err
		}
		sites.Installations = append(sites.Installations, s)
	}
	// A technician is replacing a camera at one site: its problem shows,
	// muted, as maintenance.
	now := time.Now()
	m, err := keepwatch.NewMaintenance(sites.Installations[maintained].SLC, now, now.Add(8*time.Hour), "replacing cam-07", sites.Technician.Actor, now)
	if err == nil {
		_, err = st.SetMaintenance(ctx, in.ID, m)
	}
	if err != nil {
		return creds, nil, err
	}
	if err := pinDrives(ctx, st, in.ID, sites, now); err != nil {
		return creds, nil, err
	}
	if err := offerUnregistered(ctx, st, in.ID, today); err != nil {
		return creds, nil, err
	}
	creds.UnregisteredSLC = UnregisteredSLC
	return creds, sites, nil
}

// technician makes sure the demo's technician exists as a user of the
// integrator (nobody signs in as it: its password is thrown away) and
// returns the principal it acts as, as its session would.
func technician(ctx context.Context, st *store.Store, integratorID int64) (keepwatch.Principal, int64, error) {
	users, err := st.Users(ctx, integratorID)
	if err != nil {
		return keepwatch.Principal{}, 0, err
	}
	var id int64
	for _, u := range users {
		if u.Email == TechnicianEmail {
			id = u.ID
		}
	}
	if id == 0 {
		if id, err = st.CreateUser(ctx, integratorID, TechnicianEmail, secret.HashPassword(secret.New("")), keepwatch.RoleTechnician); err != nil {
			return keepwatch.Principal{}, 0, err
		}
	}
	ss := keepwatch.Session{UserID: id, IntegratorID: integratorID, Email: TechnicianEmail, Role: keepwatch.RoleTechnician}
	return ss.Principal(), id, nil
}

// pinDrives gives the first sites drives that show each behaviour at
// once: one filling towards full in nine days, one running away, one held
// full by its recorder but keeping 19 days of footage where the customer
// requires 30, and one held full keeping 34 days; the others draw theirs
// (sim.DrivesFor).
func pinDrives(ctx context.Context, st *store.Store, integratorID int64, sites *Sites, now time.Time) error {
	const tib = 1 << 40
	day := 24 * time.Hour
	pinned := [][]sim.SimDrive{
		{{Path: `E:\Recordings`, Role: "recording", Capacity: 8 * tib, Behavior: sim.DriveFilling, Start: now.Add(-30 * day),
			StartUsed: 0.35, FullAfter: 39 * day, Seed: 1},
			{Path: `F:\Archive`, Role: "archive", Capacity: 16 * tib, Behavior: sim.DriveFilling, Start: now.Add(-200 * day),
				StartUsed: 0.05, FullAfter: 500 * day, Seed: 2}},
		{{Path: `E:\Recordings`, Role: "recording", Capacity: 6 * tib, Behavior: sim.DriveRunaway, Start: now.Add(-10 * time.Hour),
			StartUsed: 0.7, FullAfter: 40 * time.Hour, RetentionDays: 30, Seed: 3}},
		{{Path: `E:\Recordings`, Role: "recording", Capacity: 12 * tib, Behavior: sim.DriveRetained, Start: now.Add(-60 * day),
			RetentionDays: 19, Seed: 4}},
		{{Path: `D:\Recordings`, Role: "recording", Capacity: 10 * tib, Behavior: sim.DriveRetained, Start: now.Add(-60 * day),
			RetentionDays: 34, Seed: 5}},
	}
	for i, ds := range pinned {
		in := sites.Installations[i]
		in.Drives = ds
		if _, err := st.SetDriveSettings(ctx, integratorID, in.SLC, keepwatch.DriveSettings{RequiredRetentionDays: 30}); err != nil {
			return err
		}
	}
	return nil
}

// maintained is the pinned site the demo puts in a maintenance window.
const maintained = 11

// offerUnregistered makes sure the licence of UnregisteredSLC exists and
// that the demo integrator does not hold it, also when a previous run on
// the same data registered it: every run offers it afresh. No server of
// it reports, so once registered it shows as never reported.
func offerUnregistered(ctx context.Context, st *store.Store, integratorID int64, today keepwatch.Date) error {
	lic := keepwatch.Installation{SLC: UnregisteredSLC, Customer: "Juniper Dental Clinic", Product: "XProtect Professional 2013",
		Cameras: 12, CarePlusUntil: today.AddDays(365)}
	_, err := st.CreateInstallation(ctx, lic, secret.Hash(secret.New("kwe_")))
	if keepwatch.ErrorCode(err) != keepwatch.ECONFLICT {
		return err
	}
	if err := st.SetCarePlus(ctx, lic.SLC, lic.CarePlusUntil); err != nil {
		return err
	}
	if err := st.Release(ctx, integratorID, lic.SLC); keepwatch.ErrorCode(err) != keepwatch.ENOTFOUND {
		return err
	}
	return nil
}

// FaultRate and Mix of the demo's unpinned sites: about one new fault a
// minute at the default 10-second interval, mostly ones that clear by
// themselves.
var (
	FaultRate = 0.02
	Mix       = sim.Mix{
		sim.FaultDrive: 20, sim.FaultCamera: 30, sim.FaultMediaDB: 10, sim.FaultArchive: 10,
		sim.FaultCrash: 15, sim.FaultSiteOffline: 15,
	}
)

// Fleet runs the demo sites against a keepwatch URL.
type Fleet struct {
	Store  *store.Store
	Logger *slog.Logger
	sites  *Sites
	fleet  *sim.Fleet
	err    error
}

// NewFleet prepares a fleet for the sites Setup returned.
func NewFleet(url, caFile string, st *store.Store, log *slog.Logger, sites *Sites) *Fleet {
	f := &Fleet{Store: st, Logger: log, sites: sites}
	f.fleet, f.err = sim.New(sim.Config{
		URL: url, CAFile: caFile, Installations: sites.Installations, FaultRate: FaultRate, Mix: Mix,
		Ramp: time.Second, Store: st, Conns: 8, Logger: log, Drives: true,
	})
	return f
}

// Start enrolls every server. The dashboard fills within a second of Run.
func (f *Fleet) Start(ctx context.Context) error {
	if f.err != nil {
		return f.err
	}
	if err := f.fleet.Start(ctx); err != nil {
		return err
	}
	// Thirty days of drive history, so that the charts and forecasts
	// show from the first page.
	n, err := f.fleet.BackfillDrives(ctx, f.Store, time.Now(), BackfillSpan, BackfillStep)
	if err != nil {
		return err
	}
	f.Logger.Info("demo drive history written", "samples", n)
	return nil
}

// BackfillSpan is the drive history the demo writes at its start, a
// sample every BackfillStep: enough for the charts' daily points and a
// forecast's trend, written in a few seconds.
var (
	BackfillSpan = 30 * 24 * time.Hour
	BackfillStep = 6 * time.Hour
)

// Run keeps the fleet alive until ctx ends, with a technician who takes
// care of archive incidents.
func (f *Fleet) Run(ctx context.Context) {
	if f.err != nil {
		return
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		f.technician(ctx)
	}()
	if err := f.fleet.Run(ctx); err != nil {
		f.Logger.Error("demo fleet", "err", err)
	}
	wg.Wait()
}

// Stats is the demo fleet's summary.
func (f *Fleet) Stats() sim.Stats { return f.fleet.Stats() }

// technician acknowledges the archive incidents of the unpinned sites
// after a while and resolves them a little later, as a team on duty
// would, so that events come and go like state conditions do.
func (f *Fleet) technician(ctx context.Context) {
	random := map[string]bool{}
	for _, in := range f.sites.Installations {
		if !in.Scenario.Steady {
			random[in.SLC] = true
		}
	}
	every := f.fleet.Interval()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		list, err := f.Store.Incidents(ctx, f.sites.IntegratorID, "", 500)
		if err != nil {
			if ctx.Err() == nil {
				f.Logger.Warn("demo technician", "err", err)
			}
			continue
		}
		now := time.Now()
		for _, n := range list {
			if !n.Event || !random[n.SLC] {
				continue
			}
			age := now.Sub(n.OpenedAt)
			who := f.sites.Technician
			switch {
			case n.State == keepwatch.IncidentOpen && age > 5*every:
				if _, err = f.Store.AckIncident(ctx, who.IntegratorID, n.ID, who.Actor, "looking into it"); err == nil {
					_, err = f.Store.AssignIncident(ctx, who.IntegratorID, n.ID, f.sites.TechnicianID, who.Actor)
				}
			case n.State == keepwatch.IncidentAcknowledged && age > 15*every:
				_, err = f.Store.ResolveIncident(ctx, who.IntegratorID, n.ID, who.Actor, "archive job rerun successfully")
			default:
				continue
			}
			if err != nil && ctx.Err() == nil && keepwatch.ErrorCode(err) != keepwatch.ECONFLICT {
				f.Logger.Warn("demo technician", "incident", n.ID, "err", err)
			}
		}
	}
}
