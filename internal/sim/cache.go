package sim

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"keepwatch/internal/fileutil"
)

// CacheFile is the fleet's credential cache inside its state directory.
const CacheFile = "fleet.json"

// Creds are an enrolled server's identity and report key.
type Creds struct {
	Name string `json:"name"`
	ID   string `json:"id,omitempty"`
	Key  []byte `json:"key,omitempty"`
}

// Installation is one simulated customer site: a licence and the
// recording servers enrolled under it.
type Installation struct {
	SLC           string   `json:"slc"`
	Customer      string   `json:"customer"`
	Product       string   `json:"product"`
	Cameras       int      `json:"cameras"`
	EnrollmentKey string   `json:"enrollment_key,omitempty"`
	Servers       []*Creds `json:"servers"`
	// Scenario pins what happens to the site (demo); not cached.
	Scenario Scenario `json:"-"`
	// Drives pins the drives of the site's first server (demo; with
	// Config.Drives); not cached. Unset: DrivesFor draws them.
	Drives []SimDrive `json:"-"`
}

// Cache is what a state directory keeps between runs, so that a rerun
// reuses the servers it enrolled instead of enrolling new ones. It holds
// enrollment keys and report keys: it is written 0600 in a 0700 directory.
type Cache struct {
	Server     string `json:"server"`
	Integrator string `json:"integrator"`
	// IntervalSeconds is the heartbeat interval keepwatch dictated at the
	// last enrollment; it paces a rerun's first reports.
	IntervalSeconds int64 `json:"heartbeat_interval_seconds,omitempty"`
	// SeqFloor is the highest sequence number the last run used; the next
	// run starts above it even if the clock says otherwise.
	SeqFloor      uint64          `json:"seq_floor,omitempty"`
	Installations []*Installation `json:"installations"`
}

// LoadCache reads the cache of dir; a directory without one gives an
// empty cache.
func LoadCache(dir string) (*Cache, error) {
	b, err := os.ReadFile(filepath.Join(dir, CacheFile))
	if errors.Is(err, os.ErrNotExist) {
		return &Cache{}, nil
	}
	if err != nil {
		return nil, err
	}
	var c Cache
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, CacheFile), err)
	}
	return &c, nil
}

// Bind checks that the cache belongs to this keepwatch and integrator, or
// claims an empty cache for them. Credentials of one keepwatch are useless
// to another, so mixing them is refused rather than silently re-enrolling.
func (c *Cache) Bind(server, integrator string) error {
	server = strings.TrimRight(server, "/")
	if len(c.Installations) > 0 {
		if c.Server != server {
			return fmt.Errorf("the state directory holds a fleet enrolled with %s, not %s; use another --state", c.Server, server)
		}
		if c.Integrator != integrator {
			return fmt.Errorf("the state directory holds the fleet of integrator %q, not %q; use another --state", c.Integrator, integrator)
		}
	}
	c.Server, c.Integrator = server, integrator
	return nil
}

// Enrolled counts the servers with credentials.
func (c *Cache) Enrolled() int {
	n := 0
	for _, in := range c.Installations {
		for _, s := range in.Servers {
			if s.ID != "" {
				n++
			}
		}
	}
	return n
}

// Save writes the cache atomically and durably: temp file, fsync, rename,
// fsync of the directory.
func (c *Cache) Save(dir string) error {
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	return fileutil.WriteAtomic(dir, CacheFile, b)
}

// Select returns the fleet of a run: the first n installations with their
// first m servers each (c must hold them, see Extend). The Creds are
// shared with c, so enrolling them fills the cache.
func (c *Cache) Select(n, m int) []*Installation {
	out := make([]*Installation, n)
	for i, in := range c.Installations[:n] {
		cp := *in
		cp.Servers = in.Servers[:m]
		out[i] = &cp
	}
	return out
}
