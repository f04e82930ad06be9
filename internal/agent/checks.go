package agent

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"keepwatch"
	"keepwatch/internal/protocol"
)

// DiskUsage is a file system's size and the space still usable, in bytes.
type DiskUsage struct {
	Total, Free uint64
}

// Probes are the agent's ways of looking at the machine. The zero value
// uses the real ones; tests replace a probe where the machine cannot
// produce the situation for real.
type Probes struct {
	Statfs func(path string) (DiskUsage, error)
	Dial   func(ctx context.Context, network, addr string) (net.Conn, error)
	// WriteProbe writes a small file in dir, flushes it to disk and
	// removes it.
	WriteProbe func(dir string) error
}

func (p Probes) withDefaults() Probes {
	if p.Statfs == nil {
		p.Statfs = statfs
	}
	if p.Dial == nil {
		var d net.Dialer
		p.Dial = d.DialContext
	}
	if p.WriteProbe == nil {
		p.WriteProbe = writeProbe
	}
	return p
}

// check is one built-in check: it runs on its own schedule and returns the
// full set of conditions it is responsible for. An error means it could not
// look at all; its previous conditions then stay as they were.
type check struct {
	name  string
	every time.Duration
	run   func(ctx context.Context, now time.Time) ([]protocol.PayloadCondition, error)
}

// buildChecks turns a configuration into checks. media feeds ENOSPC seen
// by the media database probe to the drive check.
func buildChecks(c Config, p Probes) []check {
	var out []check
	var nospace *noSpaceSeen
	if c.MediaDatabase != "" {
		nospace = &noSpaceSeen{}
		m := &mediaDBCheck{path: c.MediaDatabase, probe: p.WriteProbe, nospace: nospace, drives: c.Drives}
		out = append(out, check{"media_database", c.Checks.MediaDatabase.Every.D(), m.run})
	}
	if len(c.Drives) > 0 {
		d := &driveCheck{drives: c.Drives, statfs: p.Statfs, nospace: nospace, active: map[string]string{}}
		out = append(out, check{"drives", c.Checks.Drives.Every.D(), d.run})
	}
	if len(c.Cameras) > 0 {
		cc := &cameraCheck{cameras: c.Cameras, cfg: c.Checks.Cameras, dial: p.Dial}
		out = append(out, check{"cameras", c.Checks.Cameras.Every.D(), cc.run})
	}
	if c.LicensedCameras > 0 {
		configured, licensed := len(c.Cameras), c.LicensedCameras
		out = append(out, check{"licenses", c.Checks.Licenses.Every.D(), func(context.Context, time.Time) ([]protocol.PayloadCondition, error) {
			if configured <= licensed {
				return nil, nil
			}
			return []protocol.PayloadCondition{{Kind: keepwatch.KindLicenseExceeded,
				Message: fmt.Sprintf("%d cameras configured, %d licensed", configured, licensed)}}, nil
		}})
	}
	return out
}

// noSpaceSeen carries "a write failed for lack of space" from the media
// database probe to the drive check, which then reports storage_full for
// that drive whatever statfs says (quotas, reserved blocks, inodes).
type noSpaceSeen struct {
	mu   sync.Mutex
	path string // the full directory, "" when the last probe succeeded
}

func (n *noSpaceSeen) set(path string) {
	if n == nil {
		return
	}
	n.mu.Lock()
	n.path = path
	n.mu.Unlock()
}

func (n *noSpaceSeen) get() string {
	if n == nil {
		return ""
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.path
}

// driveCheck reports storage_low and storage_full per drive. A raised
// condition clears only when free space is back above its threshold by a
// tenth of the threshold, so a drive the VMS keeps near a limit (deleting
// old footage as it records) does not flap.
type driveCheck struct {
	drives  []Drive
	statfs  func(string) (DiskUsage, error)
	nospace *noSpaceSeen
	active  map[string]string // path → kind raised last time
	last    map[string]protocol.PayloadCondition
}

func (d *driveCheck) run(ctx context.Context, now time.Time) ([]protocol.PayloadCondition, error) {
	var out []protocol.PayloadCondition
	var errs []string
	if d.last == nil {
		d.last = map[string]protocol.PayloadCondition{}
	}
	full := d.nospace.get()
	for _, dr := range d.drives {
		u, err := statfsTimeout(ctx, d.statfs, dr.Path)
		if err != nil {
			// Keep what was known: an unreadable drive is not evidence
			// that it emptied.
			errs = append(errs, fmt.Sprintf("%s: %v", dr.Path, err))
			if c, ok := d.last[dr.Path]; ok {
				out = append(out, c)
			}
			continue
		}
		kind, msg := d.classify(dr, u, full != "" && within(full, dr.Path))
		d.active[dr.Path] = kind
		if kind == "" {
			delete(d.last, dr.Path)
			continue
		}
		c := protocol.PayloadCondition{Kind: kind, Subject: dr.Path, Message: msg}
		d.last[dr.Path] = c
		out = append(out, c)
	}
	if full != "" && !anyWithin(full, d.drives) {
		out = append(out, protocol.PayloadCondition{Kind: keepwatch.KindStorageFull, Subject: full, Message: "a write failed: no space left on the device"})
	}
	if len(errs) > 0 {
		return out, errors.New(strings.Join(errs, "; "))
	}
	return out, nil
}

func (d *driveCheck) classify(dr Drive, u DiskUsage, noSpace bool) (kind, msg string) {
	role := "drive"
	if dr.Role != "" && dr.Role != "other" {
		role = dr.Role + " drive"
	}
	if noSpace {
		return keepwatch.KindStorageFull, role + ": a write failed: no space left on the device"
	}
	if u.Total == 0 {
		return "", ""
	}
	pct := float64(u.Free) / float64(u.Total) * 100
	msg = fmt.Sprintf("%s: %.1f %% free (%s of %s)", role, pct, bytesText(u.Free), bytesText(u.Total))
	prev := d.active[dr.Path]
	limit := func(threshold float64, raised bool) bool {
		if raised {
			return pct < threshold*1.1
		}
		return pct < threshold
	}
	switch {
	case limit(dr.StorageFullPercent, prev == keepwatch.KindStorageFull):
		return keepwatch.KindStorageFull, msg
	case limit(dr.StorageLowPercent, prev != ""):
		return keepwatch.KindStorageLow, msg
	}
	return "", ""
}

// statfsTimeout bounds a statfs call: a dead network drive can hang it.
func statfsTimeout(ctx context.Context, f func(string) (DiskUsage, error), path string) (DiskUsage, error) {
	type res struct {
		u   DiskUsage
		err error
	}
	ch := make(chan res, 1)
	go func() {
		u, err := f(path)
		ch <- res{u, err}
	}()
	t := time.NewTimer(10 * time.Second)
	defer t.Stop()
	select {
	case r := <-ch:
		return r.u, r.err
	case <-t.C:
		return DiskUsage{}, errors.New("no answer from the file system within 10s")
	case <-ctx.Done():
		return DiskUsage{}, ctx.Err()
	}
}

// within reports whether path is dir or inside it.
func within(path, dir string) bool {
	rel, err := filepath.Rel(dir, path)
	if runtime.GOOS == "windows" {
		rel, err = filepath.Rel(strings.ToLower(dir), strings.ToLower(path))
	}
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

func anyWithin(path string, drives []Drive) bool {
	for _, d := range drives {
		if within(path, d.Path) {
			return true
		}
	}
	return false
}

func bytesText(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// mediaDBCheck writes and fsyncs a probe file where the media database
// lives: the cheapest real proof that the recorder can still add data.
type mediaDBCheck struct {
	path    string
	probe   func(dir string) error
	nospace *noSpaceSeen
	drives  []Drive
}

func (m *mediaDBCheck) run(ctx context.Context, now time.Time) ([]protocol.PayloadCondition, error) {
	dir := m.path
	if fi, err := os.Stat(m.path); err == nil && !fi.IsDir() {
		dir = filepath.Dir(m.path)
	}
	err := m.probe(dir)
	if err == nil {
		m.nospace.set("")
		return nil, nil
	}
	if isNoSpace(err) {
		m.nospace.set(dir)
	} else {
		m.nospace.set("")
	}
	msg := err.Error()
	if errors.Is(err, fs.ErrNotExist) {
		msg = dir + " does not exist"
	}
	if len(msg) > keepwatch.MaxMessageLen {
		msg = msg[:keepwatch.MaxMessageLen]
	}
	return []protocol.PayloadCondition{{Kind: keepwatch.KindMediaDBWriteFailed, Subject: m.path, Message: msg}}, nil
}

// probeName is the probe file's name; a leading dot keeps it out of
// most listings, and it exists only for the moment of the probe.
const probeName = ".keepwatch-write-probe"

func writeProbe(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	path := filepath.Join(dir, probeName)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	var block [4096]byte
	copy(block[:], "keepwatch agent write probe\n")
	_, werr := f.Write(block[:])
	serr := f.Sync()
	cerr := f.Close()
	rerr := os.Remove(path)
	return errors.Join(werr, serr, cerr, rerr)
}

// cameraCheck connects to every camera; a camera is unreachable only when
// every attempt of a round fails.
type cameraCheck struct {
	cameras []Camera
	cfg     CameraChecks
	dial    func(ctx context.Context, network, addr string) (net.Conn, error)
}

func (c *cameraCheck) run(ctx context.Context, now time.Time) ([]protocol.PayloadCondition, error) {
	results := make([]error, len(c.cameras))
	sem := make(chan struct{}, c.cfg.Parallel)
	var wg sync.WaitGroup
	for i, cam := range c.cameras {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			results[i] = c.reach(ctx, cam)
		}()
	}
	wg.Wait()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	var out []protocol.PayloadCondition
	for i, err := range results {
		if err == nil {
			continue
		}
		since := now.UTC()
		msg := fmt.Sprintf("no answer from %s after %d attempts: %v", c.cameras[i].Address, c.cfg.Attempts, err)
		if len(msg) > keepwatch.MaxMessageLen {
			msg = msg[:keepwatch.MaxMessageLen]
		}
		out = append(out, protocol.PayloadCondition{Kind: keepwatch.KindCameraUnreachable, Subject: c.cameras[i].Name, Since: &since, Message: msg})
	}
	return out, nil
}

// reach tries a camera up to Attempts times and returns nil at the first
// success, else the last error.
func (c *cameraCheck) reach(ctx context.Context, cam Camera) error {
	var err error
	for i := 0; i < c.cfg.Attempts; i++ {
		if i > 0 {
			t := time.NewTimer(c.cfg.RetryDelay.D())
			select {
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			case <-t.C:
			}
		}
		if err = c.try(ctx, cam); err == nil {
			return nil
		}
	}
	return err
}

func (c *cameraCheck) try(ctx context.Context, cam Camera) error {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout.D())
	defer cancel()
	conn, err := c.dial(ctx, "tcp", cam.Address)
	if err != nil {
		return err
	}
	conn.Close()
	if cam.RTSP == "" {
		return nil
	}
	return rtspOptions(ctx, c.dial, cam.RTSP)
}

// rtspOptions asks an RTSP server for OPTIONS (RFC 2326 §10.1). Any RTSP
// answer, even 401, proves the camera's streaming service is up; silence
// or a non-RTSP answer does not.
func rtspOptions(ctx context.Context, dial func(ctx context.Context, network, addr string) (net.Conn, error), raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	port := u.Port()
	if port == "" {
		port = "554"
	}
	conn, err := dial(ctx, "tcp", net.JoinHostPort(u.Hostname(), port))
	if err != nil {
		return err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	// Credentials in the URL are not sent: OPTIONS needs none, and a 401
	// answer is proof enough.
	u.User = nil
	if _, err := fmt.Fprintf(conn, "OPTIONS %s RTSP/1.0\r\nCSeq: 1\r\nUser-Agent: keepwatch-agent/%s\r\n\r\n", u.String(), keepwatch.Version); err != nil {
		return err
	}
	line, err := bufio.NewReaderSize(conn, 512).ReadString('\n')
	if err != nil {
		return fmt.Errorf("RTSP OPTIONS: %w", err)
	}
	if !strings.HasPrefix(line, "RTSP/1.0 ") && !strings.HasPrefix(line, "RTSP/2.0 ") {
		return fmt.Errorf("RTSP OPTIONS: not an RTSP answer")
	}
	return nil
}
