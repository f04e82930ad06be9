package sim

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"strings"

	"keepwatch"
	"keepwatch/internal/secret"
	"keepwatch/internal/store"
)

// Plan is the fleet a simulate run asks for.
type Plan struct {
	Integrator    string
	Installations int
	Servers       int // per installation
	Today         keepwatch.Date
}

// Provisioned is what the operator side of a run did.
type Provisioned struct {
	IntegratorID int64
	// Token is the owner API token of an integrator created by this run
	// ("" when it existed): shown once, like `admin token create`.
	Token string
	// Created licences, Rotated enrollment keys (licence known to keepwatch
	// but its key not to the cache), Registered SLCs, and Stale cached
	// credentials keepwatch no longer accepts (they are enrolled again).
	Created, Rotated, Registered, Stale int
}

// Provision plays the operator for a simulated fleet, against keepwatch's
// database as the admin commands do: it creates the integrator if missing
// (with an owner API token), a licence with an enrollment key for every
// installation the cache lacks, registers the SLCs to the integrator, and
// drops cached credentials keepwatch no longer knows. It extends c to the
// plan's size; the first p.Installations entries of c are then the fleet.
func Provision(ctx context.Context, st *store.Store, c *Cache, p Plan) (Provisioned, error) {
	var out Provisioned
	if p.Installations < 1 || p.Servers < 1 {
		return out, keepwatch.Errorf(keepwatch.EINVALID, "a fleet needs at least one installation and one server each")
	}
	in, err := st.IntegratorByName(ctx, p.Integrator)
	if keepwatch.ErrorCode(err) == keepwatch.ENOTFOUND {
		if in, err = st.CreateIntegrator(ctx, p.Integrator); err != nil {
			return out, err
		}
		out.Token = secret.New("kw_")
		if _, err := st.CreateToken(ctx, in.ID, "keepwatch simulate", keepwatch.RoleOwner, secret.Hash(out.Token)); err != nil {
			return out, err
		}
	} else if err != nil {
		return out, err
	}
	out.IntegratorID = in.ID
	Extend(c, p)
	for _, inst := range c.Installations[:p.Installations] {
		if err := provisionOne(ctx, st, inst, p, in.ID, &out); err != nil {
			return out, err
		}
	}
	return out, nil
}

func provisionOne(ctx context.Context, st *store.Store, inst *Installation, p Plan, integratorID int64, out *Provisioned) error {
	info, keyHash, err := st.EnrollmentInfo(ctx, inst.SLC)
	switch keepwatch.ErrorCode(err) {
	case "":
	case keepwatch.EUNAUTHORIZED: // no such licence (enrollment does not say which)
		inst.EnrollmentKey = secret.New("kwe_")
		lic := keepwatch.Installation{
			SLC: inst.SLC, Customer: inst.Customer, Product: inst.Product, Cameras: inst.Cameras,
			CarePlusUntil: p.Today.AddDays(365 + len(inst.SLC)%300),
		}
		if _, err := st.CreateInstallation(ctx, lic, secret.Hash(inst.EnrollmentKey)); err != nil {
			return err
		}
		out.Created++
		for _, s := range inst.Servers {
			if s.ID != "" {
				out.Stale++
			}
			s.ID, s.Key = "", nil
		}
		if err := st.Register(ctx, integratorID, inst.SLC); err != nil {
			return err
		}
		out.Registered++
		return nil
	default:
		return err
	}
	switch info.IntegratorID {
	case integratorID:
	case 0:
		if err := st.Register(ctx, integratorID, inst.SLC); err != nil {
			return err
		}
		out.Registered++
	default:
		return keepwatch.Errorf(keepwatch.ECONFLICT, "SLC %s is registered to another integrator; choose another --integrator", inst.SLC)
	}
	missing := false
	for _, s := range inst.Servers[:p.Servers] {
		if s.ID == "" {
			missing = true
			continue
		}
		rec, err := st.ServerRecord(ctx, s.ID)
		if err != nil && keepwatch.ErrorCode(err) != keepwatch.ENOTFOUND {
			return err
		}
		if err != nil || rec.Revoked || rec.SLC != inst.SLC || subtle.ConstantTimeCompare(rec.Key, s.Key) != 1 {
			s.ID, s.Key = "", nil
			out.Stale++
			missing = true
		}
	}
	if !missing {
		return nil
	}
	if inst.EnrollmentKey != "" && subtle.ConstantTimeCompare(secret.Hash(inst.EnrollmentKey), keyHash) == 1 {
		return nil
	}
	inst.EnrollmentKey = secret.New("kwe_")
	if err := st.SetEnrollmentKey(ctx, inst.SLC, secret.Hash(inst.EnrollmentKey)); err != nil {
		return err
	}
	out.Rotated++
	return nil
}

// Extend grows c to the plan: installations named after the integrator
// (so that two integrators' fleets never claim the same SLC) and servers
// RS-01, RS-02, … in each. Existing entries are kept as they are.
func Extend(c *Cache, p Plan) {
	sum := sha256.Sum256([]byte(p.Integrator))
	prefix := "SIM-" + strings.ToUpper(hex.EncodeToString(sum[:3]))
	for i := len(c.Installations); i < p.Installations; i++ {
		c.Installations = append(c.Installations, &Installation{
			SLC:      fmt.Sprintf("%s-%05d", prefix, i+1),
			Customer: customerName(i),
			Product:  products[(i*7)%len(products)],
			Cameras:  8 * (1 + (i*5)%16),
		})
	}
	for _, inst := range c.Installations[:p.Installations] {
		for j := len(inst.Servers); j < p.Servers; j++ {
			inst.Servers = append(inst.Servers, &Creds{Name: fmt.Sprintf("RS-%02d", j+1)})
		}
	}
}

var (
	places = []string{
		"Harbor", "Northgate", "Ashford", "Riverside", "Blue Lake", "Metro", "Oakwood", "Summit", "Greenfield", "Pinecrest",
		"Sterling", "Westbrook", "Cedar Valley", "Lakeside", "Iron Works", "Maple Street", "Coastal", "Elm Grove", "Union", "Silver Creek",
		"Crown", "Redwood", "Hillside", "Falcon", "Granite", "Bayview", "Orchard", "Kingsway", "Willow", "Starlight",
	}
	businesses = []string{
		"Logistics", "Mall", "Town Hall", "Hospital", "Casino", "Transit Depot", "School District", "Data Center", "Farms", "Hotel",
		"Bank", "Airport", "Prison", "Stadium", "Foundry", "Pharmacy", "Port Authority", "Retail Park", "Rail Yard", "Mine",
	}
	products = []string{
		"XProtect Corporate 2016", "XProtect Expert 2016", "XProtect Enterprise 2013", "XProtect Professional 2013",
		"Husky M30", "Husky M50", "Husky M10",
	}
)

// customerName gives installation i a plausible, unique customer name.
func customerName(i int) string {
	n := len(places) * len(businesses)
	name := places[i%len(places)] + " " + businesses[(i/len(places)+i)%len(businesses)]
	if i >= n {
		name += fmt.Sprintf(" %d", i/n+1)
	}
	return name
}
