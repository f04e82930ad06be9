// Package demo sets up a demo integrator with a few dozen installations
// and runs their recording servers in-process through the real protocol,
// so a new user sees a living keepwatch within seconds.
package demo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"keepwatch"
	"keepwatch/internal/agent"
	"keepwatch/internal/protocol"
	"keepwatch/internal/secret"
	"keepwatch/internal/store"
)

// Names of the demo tenant.
const (
	IntegratorName = "Demo Integrator"
	OwnerEmail     = "demo@keepwatch.example"
)

// Credentials are what the demo prints.
type Credentials struct {
	Email, Password, Token string
}

// site is one demo installation and what happens to it.
type site struct {
	slc, customer, product string
	servers                int
	scenario               string // "", storage_full, camera, media_db, license, storage_low, archive, offline, paused, never, consent, flapping
	key                    string
	agents                 []*agent.Sender
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

var scenarios = []string{"storage_full", "camera", "media_db", "license", "storage_low", "archive", "offline", "paused", "never", "consent", "flapping", "camera"}

// Setup creates (or reuses) the demo integrator, its owner and licences,
// and returns fresh credentials. It is idempotent on an existing data dir.
func Setup(ctx context.Context, st *store.Store, today keepwatch.Date) (Credentials, []*site, error) {
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
	} else if err := st.SetPassword(ctx, OwnerEmail, secret.HashPassword(creds.Password)); err != nil {
		return creds, nil, err
	}
	creds.Token = secret.New("kw_")
	if _, err := st.CreateToken(ctx, in.ID, "demo "+time.Now().UTC().Format(time.RFC3339), keepwatch.RoleOwner, secret.Hash(creds.Token)); err != nil {
		return creds, nil, err
	}
	var sites []*site
	for i, c := range customers {
		s := &site{
			slc: fmt.Sprintf("DEMO-%04d-%04d", 1000+i*37, 7000+i*13), customer: c, product: products[i%len(products)],
			servers: 1 + i%3,
		}
		if i < len(scenarios) {
			s.scenario = scenarios[i]
		}
		if s.scenario == "offline" {
			s.servers = 3
		}
		s.key = secret.New("kwe_")
		lic := keepwatch.Installation{SLC: s.slc, Customer: c, Product: s.product, Cameras: 16 + 8*(i%5), CarePlusUntil: today.AddDays(30 + 11*i)}
		if i%9 == 4 {
			lic.CarePlusUntil = today.AddDays(12) // ending soon
		}
		_, err := st.CreateInstallation(ctx, lic, secret.Hash(s.key))
		if keepwatch.ErrorCode(err) == keepwatch.ECONFLICT {
			if err = st.SetCarePlus(ctx, s.slc, lic.CarePlusUntil); err == nil {
				err = st.SetEnrollmentKey(ctx, s.slc, secret.Hash(s.key))
			}
		}
		if err != nil {
			return creds, nil, err
		}
		if err := st.Register(ctx, in.ID, s.slc); err != nil {
			return creds, nil, err
		}
		sites = append(sites, s)
	}
	return creds, sites, nil
}

// Fleet runs the demo sites' agents against a keepwatch URL.
type Fleet struct {
	URL, CAFile string
	Store       *store.Store
	Logger      *slog.Logger
	sites       []*site
	rnd         *rand.Rand
	mu          sync.Mutex
	active      map[*agent.Sender]map[string]bool // current conditions per agent
}

// NewFleet prepares a fleet for the sites Setup returned.
func NewFleet(url, caFile string, st *store.Store, log *slog.Logger, sites []*site) *Fleet {
	return &Fleet{URL: url, CAFile: caFile, Store: st, Logger: log, sites: sites,
		rnd: rand.New(rand.NewPCG(1, 2)), active: map[*agent.Sender]map[string]bool{}}
}

// Start enrolls every agent and sends the first reports. It returns when
// the dashboard has something to show.
func (f *Fleet) Start(ctx context.Context) error {
	for _, s := range f.sites {
		if s.scenario == "never" {
			continue
		}
		for n := 1; n <= s.servers; n++ {
			st, err := agent.Enroll(ctx, agent.EnrollOptions{Server: f.URL, CAFile: f.CAFile, SLC: s.slc, Key: s.key, Name: fmt.Sprintf("RS-%02d", n), Consent: true})
			if err != nil {
				return fmt.Errorf("enroll %s: %w", s.slc, err)
			}
			c, err := agent.NewClient(st.Server, f.CAFile)
			if err != nil {
				return err
			}
			a := &agent.Sender{State: st, Client: c}
			s.agents = append(s.agents, a)
			f.active[a] = map[string]bool{}
		}
		first := s.agents[0]
		switch s.scenario {
		case "storage_full":
			f.active[first]["storage_full:E:\\Recordings"] = true
		case "camera":
			f.active[first][fmt.Sprintf("camera_unreachable:cam-%02d Entrance", 3+len(s.slc)%9)] = true
		case "media_db":
			f.active[first]["media_db_write_failed:D:\\MediaDatabase"] = true
		case "license":
			f.active[first]["license_exceeded"] = true
		case "storage_low":
			f.active[first]["storage_low:F:\\Archive"] = true
		}
		for _, a := range s.agents {
			if err := f.sendStatus(ctx, a, nil); err != nil {
				return err
			}
		}
		switch s.scenario {
		case "archive":
			if err := f.sendStatus(ctx, first, []string{"archive_move_failed:Archive 2026-11-24"}); err != nil {
				return err
			}
		case "consent":
			off := false
			if _, err := first.Send(ctx, &protocol.Payload{Consent: &off}); err != nil {
				return err
			}
			for _, a := range s.agents[1:] {
				a.Send(ctx, &protocol.Payload{Consent: &off})
			}
		case "paused":
			if err := f.Store.SetCarePlus(ctx, s.slc, keepwatch.DateOf(time.Now()).AddDays(-3)); err != nil {
				return err
			}
		}
	}
	return nil
}

func (f *Fleet) sendStatus(ctx context.Context, a *agent.Sender, events []string) error {
	f.mu.Lock()
	var conds []string
	for c := range f.active[a] {
		conds = append(conds, c)
	}
	f.mu.Unlock()
	p, err := agent.StatusPayload(conds, events, time.Now().UTC())
	if err != nil {
		return err
	}
	_, err = a.Send(ctx, p)
	return err
}

// Run keeps the fleet alive until ctx ends: heartbeats at the interval the
// server dictates, a flapping camera, and now and then a new problem that
// clears again. The "offline" site stays silent.
func (f *Fleet) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, s := range f.sites {
		if s.scenario == "offline" || s.scenario == "consent" || s.scenario == "paused" {
			continue
		}
		for i, a := range s.agents {
			wg.Add(1)
			go func() {
				defer wg.Done()
				f.runAgent(ctx, s, i, a)
			}()
		}
	}
	wg.Wait()
}

func (f *Fleet) runAgent(ctx context.Context, s *site, i int, a *agent.Sender) {
	f.mu.Lock()
	jitter := time.Duration(f.rnd.Int64N(int64(time.Second)))
	f.mu.Unlock()
	t := time.NewTimer(jitter)
	defer t.Stop()
	beats := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		beats++
		var err error
		switch {
		case s.scenario == "flapping" && i == 0 && beats%3 == 0:
			f.toggle(a, "camera_unreachable:cam-12 Loading Dock")
			err = f.sendStatus(ctx, a, nil)
		case f.chance(0.01):
			f.toggle(a, fmt.Sprintf("camera_unreachable:cam-%02d", 1+f.intn(24)))
			err = f.sendStatus(ctx, a, nil)
		default:
			_, err = a.Send(ctx, nil)
		}
		if err != nil && !errors.Is(err, context.Canceled) && ctx.Err() == nil {
			f.Logger.Debug("demo agent", "slc", s.slc, "err", err)
		}
		interval := time.Duration(a.State.Interval) * time.Second
		if interval <= 0 {
			interval = 10 * time.Second
		}
		t.Reset(interval)
	}
}

func (f *Fleet) toggle(a *agent.Sender, cond string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.active[a][cond] {
		delete(f.active[a], cond)
	} else {
		f.active[a][cond] = true
	}
}

func (f *Fleet) chance(p float64) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.rnd.Float64() < p
}

func (f *Fleet) intn(n int) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.rnd.IntN(n)
}
