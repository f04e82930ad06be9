package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"keepwatch"
	"keepwatch/internal/protocol"
)

// driveSampler measures every configured drive for keepwatch's forecasts:
// capacity and free space, and for a drive with a recordings directory
// the time of its oldest footage. The fill rate is keepwatch's to derive;
// the agent only sends what it measured and when.
type driveSampler struct {
	drives  []Drive
	statfs  func(string) (DiskUsage, error)
	finders map[string]oldestFinder // by drive path

	mu   sync.Mutex
	last []protocol.PayloadDrive // the latest round, for agent status
}

// oldestFinder finds the time of the oldest recording under a directory.
// ok is false when there is none (an empty directory).
type oldestFinder interface {
	oldest(ctx context.Context, now time.Time) (t time.Time, ok bool, err error)
}

func newDriveSampler(c Config, p Probes) *driveSampler {
	if len(c.Drives) == 0 {
		return nil
	}
	s := &driveSampler{drives: c.Drives, statfs: p.Statfs, finders: map[string]oldestFinder{}}
	for _, d := range c.Drives {
		switch {
		case d.Recordings == "":
		case d.Layout == LayoutDatedFolders:
			pat, _ := parseFolders(d.Folders) // validated by normalize
			s.finders[d.Path] = &datedFolders{root: d.Recordings, pat: pat}
		default:
			s.finders[d.Path] = &oldestFile{root: d.Recordings, rescanEvery: c.Checks.DriveSamples.Rescan.D()}
		}
	}
	return s
}

// sample measures every drive once. A drive that cannot be measured is
// left out of the round (keepwatch keeps what it had) and named in the
// error; the others are sampled all the same.
func (s *driveSampler) sample(ctx context.Context, now time.Time) ([]protocol.PayloadDrive, error) {
	at := now.UTC()
	var out []protocol.PayloadDrive
	var errs []string
	for _, d := range s.drives {
		u, err := statfsTimeout(ctx, s.statfs, d.Path)
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", d.Path, err))
			continue
		}
		if u.Total == 0 {
			continue
		}
		pd := protocol.PayloadDrive{Path: d.Path, Role: d.Role, At: &at, Capacity: u.Total, Free: min(u.Free, u.Total)}
		if f := s.finders[d.Path]; f != nil {
			t, ok, err := f.oldest(ctx, now)
			switch {
			case err != nil:
				errs = append(errs, fmt.Sprintf("%s: oldest recording: %v", d.Recordings, err))
			case ok:
				t = t.UTC()
				if t.After(at) {
					t = at // a clock set back, or a file from the future
				}
				pd.OldestRecordingAt = &t
			}
		}
		out = append(out, pd)
	}
	s.mu.Lock()
	s.last = out
	s.mu.Unlock()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if len(errs) > 0 {
		return out, errors.New(strings.Join(errs, "; "))
	}
	return out, nil
}

func (s *driveSampler) latest() []protocol.PayloadDrive {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

// normalizeRecordings fills a drive's layout and checks its recordings
// settings.
func normalizeRecordings(d *Drive) error {
	bad := func(format string, args ...any) error { return keepwatch.Errorf(keepwatch.EINVALID, format, args...) }
	if d.Recordings == "" {
		if d.Layout != "" || d.Folders != "" {
			return bad("layout and folders need recordings, the directory of the footage")
		}
		return nil
	}
	if !keepwatch.ValidText(d.Recordings, 4096) {
		return bad("recordings is not printable")
	}
	if !filepath.IsAbs(d.Recordings) {
		return bad("recordings must be an absolute path")
	}
	switch d.Layout {
	case "":
		d.Layout = LayoutOldestFile
	case LayoutOldestFile, LayoutDatedFolders:
	default:
		return bad("layout must be %s or %s", LayoutOldestFile, LayoutDatedFolders)
	}
	if d.Layout != LayoutDatedFolders {
		if d.Folders != "" {
			return bad("folders is for the %s layout", LayoutDatedFolders)
		}
		return nil
	}
	if d.Folders == "" {
		d.Folders = DefaultFolders
	}
	_, err := parseFolders(d.Folders)
	return err
}

// DefaultFolders is the dated-folders pattern unless one is given: the
// recordings directory holds one folder per day, named 2026-11-25 or
// 20261125.
const DefaultFolders = "YYYY-MM-DD|YYYYMMDD"

// A folders pattern is the path of the footage below the recordings
// directory, one segment per folder level, separated by "/". A segment is
// "*" (any folder: cameras, storages) or a template of the folder's name:
// the tokens YYYY, MM, DD, hh and mm stand for the year, month, day, hour
// and minute, "*" for any text, anything else for itself; "|" separates
// alternatives. Examples:
//
//	YYYY-MM-DD|YYYYMMDD      one folder per day (the default)
//	*/YYYY/MM/DD/hh          per camera, then year, month, day, hour
//	YYYY-MM-DD/hh            per day, then per hour
//	*/* - YYYY-MM-DDThh*     per storage, then "Camera 1 - 2026-11-25T08:00:00+01:00"
//
// A folder's time is the start of what its name says, in this machine's
// time zone; the oldest footage is the earliest folder at the last level
// that holds anything. Tokens go from coarse to fine along the path (a
// year before a month, a month before a day), so the earliest folder of
// a level holds the earliest footage below it.
type folderPattern []folderSegment

type folderSegment struct {
	any  bool // "*": every folder, no time
	alts []folderTemplate
}

type folderTemplate struct {
	re     *regexp.Regexp
	fields []dateField // of the regexp's groups, in order
}

type dateField int

const (
	fieldYear dateField = iota
	fieldMonth
	fieldDay
	fieldHour
	fieldMinute
	nFields
)

var dateTokens = []struct {
	tok   string
	field dateField
}{{"YYYY", fieldYear}, {"MM", fieldMonth}, {"DD", fieldDay}, {"hh", fieldHour}, {"mm", fieldMinute}}

// maxFolderLevels bounds a pattern's depth.
const maxFolderLevels = 8

func parseFolders(s string) (folderPattern, error) {
	bad := func(format string, args ...any) error {
		return keepwatch.Errorf(keepwatch.EINVALID, "folders %q: "+format, append([]any{s}, args...)...)
	}
	segs := strings.Split(strings.ReplaceAll(s, `\`, "/"), "/")
	if len(segs) > maxFolderLevels {
		return nil, bad("at most %d levels", maxFolderLevels)
	}
	var pat folderPattern
	finest := dateField(-1)
	hasYear := false
	for _, seg := range segs {
		if seg == "" {
			return nil, bad("an empty level")
		}
		if seg == "*" {
			pat = append(pat, folderSegment{any: true})
			continue
		}
		var fs folderSegment
		var segFields []dateField
		for i, alt := range strings.Split(seg, "|") {
			t, err := parseTemplate(alt)
			if err != nil {
				return nil, bad("%s", err.Error())
			}
			if i > 0 && !sameFields(t.fields, segFields) {
				return nil, bad("alternatives of a level must name the same parts of the date")
			}
			segFields = t.fields
			fs.alts = append(fs.alts, t)
		}
		if len(segFields) == 0 {
			return nil, bad("level %q names no part of a date (use * for any folder)", seg)
		}
		for _, f := range segFields {
			if f <= finest {
				return nil, bad("parts of the date go from the year to the minute along the path, each once")
			}
			hasYear = hasYear || f == fieldYear
		}
		finest = slicesMax(segFields)
		pat = append(pat, fs)
	}
	if !hasYear {
		return nil, bad("the year (YYYY) must be part of the path")
	}
	return pat, nil
}

func parseTemplate(t string) (folderTemplate, error) {
	var re strings.Builder
	var out folderTemplate
	re.WriteString("^")
	seen := map[dateField]bool{}
	for i := 0; i < len(t); {
		matched := false
		for _, tk := range dateTokens {
			if strings.HasPrefix(t[i:], tk.tok) {
				if seen[tk.field] {
					return out, fmt.Errorf("%s appears twice", tk.tok)
				}
				seen[tk.field] = true
				fmt.Fprintf(&re, `(\d{%d})`, len(tk.tok))
				out.fields = append(out.fields, tk.field)
				i += len(tk.tok)
				matched = true
				break
			}
		}
		if matched {
			continue
		}
		if t[i] == '*' {
			re.WriteString(".*")
		} else {
			re.WriteString(regexp.QuoteMeta(t[i : i+1]))
		}
		i++
	}
	re.WriteString("$")
	out.re = regexp.MustCompile(re.String())
	// Within one name the parts must also go from coarse to fine.
	for i := 1; i < len(out.fields); i++ {
		if out.fields[i] < out.fields[i-1] {
			return out, fmt.Errorf("%q: parts of the date go from the year to the minute", t)
		}
	}
	return out, nil
}

func sameFields(a, b []dateField) bool {
	if len(a) != len(b) {
		return false
	}
	x, y := append([]dateField(nil), a...), append([]dateField(nil), b...)
	sort.Slice(x, func(i, j int) bool { return x[i] < x[j] })
	sort.Slice(y, func(i, j int) bool { return y[i] < y[j] })
	for i := range x {
		if x[i] != y[i] {
			return false
		}
	}
	return true
}

func slicesMax(fs []dateField) dateField {
	m := fs[0]
	for _, f := range fs[1:] {
		m = max(m, f)
	}
	return m
}

// dateParts are the parts of a date collected along a path; -1 is unset.
type dateParts [nFields]int

func noParts() dateParts { return dateParts{-1, -1, -1, -1, -1} }

// match parses a folder name; ok is false when no alternative matches or
// the date is impossible (month 13).
func (s folderSegment) match(name string, p dateParts) (dateParts, bool) {
	for _, t := range s.alts {
		m := t.re.FindStringSubmatch(name)
		if m == nil {
			continue
		}
		q := p
		for i, f := range t.fields {
			v, _ := strconv.Atoi(m[i+1])
			q[f] = v
		}
		if q.valid() {
			return q, true
		}
	}
	return p, false
}

func (p dateParts) valid() bool {
	lim := [nFields][2]int{{1, 9999}, {1, 12}, {1, 31}, {0, 23}, {0, 59}}
	for f, v := range p {
		if v != -1 && (v < lim[f][0] || v > lim[f][1]) {
			return false
		}
	}
	return true
}

// less orders parts from coarse to fine; unset parts count as the start.
func (p dateParts) less(q dateParts) bool {
	for f := range p {
		a, b := max(p[f], 0), max(q[f], 0)
		if a != b {
			return a < b
		}
	}
	return false
}

func (p dateParts) time(loc *time.Location) time.Time {
	get := func(f dateField, def int) int {
		if p[f] < 0 {
			return def
		}
		return p[f]
	}
	return time.Date(get(fieldYear, 1), time.Month(get(fieldMonth, 1)), get(fieldDay, 1), get(fieldHour, 0), get(fieldMinute, 0), 0, 0, loc)
}

// Bounds on one look at a dated layout, so that a wrong pattern on a
// huge tree cannot make the agent read it all every few minutes.
const (
	maxFolderEntries = 200_000 // names read from one folder
	maxFolderReads   = 10_000  // folders read in one look
)

// datedFolders finds the oldest recording from folder names alone: a
// look reads the names of the levels down to the earliest non-empty
// folder (a "*" level: each of its folders), never a file's metadata.
type datedFolders struct {
	root  string
	pat   folderPattern
	loc   *time.Location // nil: time.Local
	reads int            // folders read by the last look
}

func (d *datedFolders) oldest(ctx context.Context, now time.Time) (time.Time, bool, error) {
	d.reads = 0
	loc := d.loc
	if loc == nil {
		loc = time.Local
	}
	p, ok, err := d.walk(ctx, d.root, 0, noParts())
	if err != nil || !ok {
		return time.Time{}, false, err
	}
	return p.time(loc), true, nil
}

func (d *datedFolders) walk(ctx context.Context, dir string, level int, p dateParts) (dateParts, bool, error) {
	if err := ctx.Err(); err != nil {
		return p, false, err
	}
	if d.reads++; d.reads > maxFolderReads {
		return p, false, fmt.Errorf("more than %d folders to read: does the folders pattern fit %s?", maxFolderReads, d.root)
	}
	if level == len(d.pat) {
		empty, err := emptyDir(dir)
		return p, err == nil && !empty, ignoreGone(err)
	}
	names, err := dirNames(dir)
	if err != nil {
		if level > 0 && errors.Is(err, fs.ErrNotExist) {
			return p, false, nil // deleted while we looked
		}
		return p, false, err
	}
	seg := d.pat[level]
	if seg.any {
		best, found := p, false
		for _, n := range names {
			q, ok, err := d.walk(ctx, filepath.Join(dir, n), level+1, p)
			if err != nil {
				return p, false, err
			}
			if ok && (!found || q.less(best)) {
				best, found = q, true
			}
		}
		return best, found, nil
	}
	type cand struct {
		name string
		p    dateParts
	}
	var cs []cand
	for _, n := range names {
		if q, ok := seg.match(n, p); ok {
			cs = append(cs, cand{n, q})
		}
	}
	sort.SliceStable(cs, func(i, j int) bool { return cs[i].p.less(cs[j].p) })
	for _, c := range cs {
		q, ok, err := d.walk(ctx, filepath.Join(dir, c.name), level+1, c.p)
		if err != nil {
			return p, false, err
		}
		if ok {
			return q, true, nil
		}
	}
	return p, false, nil
}

// dirNames lists the folders in dir (not files), at most maxFolderEntries.
func dirNames(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	for n := 0; n < maxFolderEntries; {
		ents, err := f.ReadDir(1024)
		for _, e := range ents {
			if e.IsDir() {
				out = append(out, e.Name())
			}
		}
		n += len(ents)
		if err == io.EOF || len(ents) == 0 {
			return out, nil
		}
		if err != nil {
			return out, err
		}
	}
	return out, fmt.Errorf("%s holds more than %d entries", dir, maxFolderEntries)
}

func emptyDir(dir string) (bool, error) {
	f, err := os.Open(dir)
	if err != nil {
		return false, err
	}
	defer f.Close()
	names, err := f.Readdirnames(1)
	if err == io.EOF {
		return true, nil
	}
	return len(names) == 0, err
}

func ignoreGone(err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// oldestFile finds the oldest recording as the oldest modification time
// of a file under a directory tree, without walking the tree every time.
//
// A full walk notes, for every folder, the oldest file directly in it,
// and keeps the folders whose oldest file is within trackWindow of the
// oldest of all (at most maxTracked of them) and bound, the oldest file
// time of the first folder left out. A recorder only adds files newer
// than everything there (they are written now) and deletes old ones, so
// until the next walk every file outside the tracked folders is at or
// after bound. A look then reads only the tracked folders: their oldest
// file is the oldest of all as long as it is not after bound. When the
// recorder has deleted past bound (or emptied the tracked folders), or
// rescanEvery passed (files copied in with old times), the tree is walked
// again; a walk happens at most once an hour even so, in between the
// tracked folders' oldest stands (late by at most an hour's deletions).
type oldestFile struct {
	root        string
	rescanEvery time.Duration

	lastWalk time.Time
	tracked  map[string]time.Time
	bound    time.Time // zero: every folder with files is tracked
	walks    int       // full walks so far
	reads    int       // folders read by the last look
}

const (
	maxTracked     = 256
	trackWindow    = 24 * time.Hour
	minWalkSpacing = time.Hour
)

func (o *oldestFile) oldest(ctx context.Context, now time.Time) (time.Time, bool, error) {
	o.reads = 0
	if o.lastWalk.IsZero() || now.Sub(o.lastWalk) >= o.rescanEvery || now.Before(o.lastWalk) {
		return o.walk(ctx, now)
	}
	var best time.Time
	for dir := range o.tracked {
		if err := ctx.Err(); err != nil {
			return time.Time{}, false, err
		}
		o.reads++
		t, ok, err := oldestIn(dir)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return time.Time{}, false, err
		}
		if !ok {
			delete(o.tracked, dir)
			continue
		}
		o.tracked[dir] = t
		if best.IsZero() || t.Before(best) {
			best = t
		}
	}
	drained := best.IsZero() || (!o.bound.IsZero() && best.After(o.bound))
	if drained && now.Sub(o.lastWalk) >= minWalkSpacing {
		return o.walk(ctx, now)
	}
	if best.IsZero() && !o.bound.IsZero() {
		// Every tracked folder emptied within the hour: what is left is
		// at or after bound.
		return o.bound, true, nil
	}
	return best, !best.IsZero(), nil
}

// walk reads the whole tree and chooses the folders to track.
func (o *oldestFile) walk(ctx context.Context, now time.Time) (time.Time, bool, error) {
	type dirMin struct {
		dir string
		t   time.Time
	}
	mins := map[string]time.Time{}
	n := 0
	err := filepath.WalkDir(o.root, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			if path == o.root {
				return err
			}
			return nil // a folder deleted or unreadable while we walk
		}
		if n++; n%1024 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		if !e.Type().IsRegular() {
			return nil
		}
		fi, err := e.Info()
		if err != nil {
			return nil
		}
		dir := filepath.Dir(path)
		if t, ok := mins[dir]; !ok || fi.ModTime().Before(t) {
			mins[dir] = fi.ModTime()
		}
		return nil
	})
	o.reads = n
	if err != nil {
		return time.Time{}, false, err
	}
	o.walks++
	o.lastWalk = now
	all := make([]dirMin, 0, len(mins))
	for d, t := range mins {
		all = append(all, dirMin{d, t})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].t.Before(all[j].t) })
	o.tracked, o.bound = map[string]time.Time{}, time.Time{}
	if len(all) == 0 {
		return time.Time{}, false, nil
	}
	for i, dm := range all {
		if i == maxTracked || dm.t.Sub(all[0].t) > trackWindow {
			o.bound = dm.t
			break
		}
		o.tracked[dm.dir] = dm.t
	}
	return all[0].t, true, nil
}

// oldestIn returns the oldest modification time of the regular files
// directly in dir.
func oldestIn(dir string) (time.Time, bool, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return time.Time{}, false, err
	}
	var best time.Time
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue // deleted since the listing
		}
		if best.IsZero() || fi.ModTime().Before(best) {
			best = fi.ModTime()
		}
	}
	return best, !best.IsZero(), nil
}
