// Package metrics exposes counters and gauges in the Prometheus text
// format. keepwatch needs a handful of series, not a client library.
package metrics

import (
	"fmt"
	"io"
	"math"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
)

// Registry holds named metric families and writes them on /metrics.
type Registry struct {
	mu       sync.Mutex
	families map[string]*family
}

type family struct {
	name, help, typ string
	label           string // the one label name, "" for none
	mu              sync.Mutex
	series          map[string]*atomic.Uint64 // label value → bits
	gauge           func() map[string]float64 // for gauge funcs
}

// New returns an empty registry.
func New() *Registry { return &Registry{families: map[string]*family{}} }

func (r *Registry) add(f *family) *family {
	r.mu.Lock()
	defer r.mu.Unlock()
	if old, ok := r.families[f.name]; ok {
		return old
	}
	f.series = map[string]*atomic.Uint64{}
	r.families[f.name] = f
	return f
}

// Counter is a monotonically increasing count with an optional label.
type Counter struct{ f *family }

// NewCounter registers a counter; label may be "".
func (r *Registry) NewCounter(name, help, label string) *Counter {
	return &Counter{r.add(&family{name: name, help: help, typ: "counter", label: label})}
}

// Inc adds one to the series with the given label value.
func (c *Counter) Inc(labelValue string) { c.Add(labelValue, 1) }

// Add adds n.
func (c *Counter) Add(labelValue string, n uint64) {
	c.f.mu.Lock()
	v, ok := c.f.series[labelValue]
	if !ok {
		v = new(atomic.Uint64)
		c.f.series[labelValue] = v
	}
	c.f.mu.Unlock()
	v.Add(n)
}

// Value returns the current count of a series (for tests and status).
func (c *Counter) Value(labelValue string) uint64 {
	c.f.mu.Lock()
	defer c.f.mu.Unlock()
	if v, ok := c.f.series[labelValue]; ok {
		return v.Load()
	}
	return 0
}

// NewGaugeFunc registers a gauge whose values fn computes at scrape time,
// keyed by label value ("" when label is "").
func (r *Registry) NewGaugeFunc(name, help, label string, fn func() map[string]float64) {
	r.add(&family{name: name, help: help, typ: "gauge", label: label, gauge: fn})
}

// WriteTo writes all families in the text exposition format.
func (r *Registry) WriteTo(w io.Writer) (int64, error) {
	r.mu.Lock()
	names := make([]string, 0, len(r.families))
	for n := range r.families {
		names = append(names, n)
	}
	r.mu.Unlock()
	sort.Strings(names)
	var b strings.Builder
	for _, n := range names {
		r.mu.Lock()
		f := r.families[n]
		r.mu.Unlock()
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s %s\n", f.name, f.help, f.name, f.typ)
		values := map[string]float64{}
		if f.gauge != nil {
			values = f.gauge()
		} else {
			f.mu.Lock()
			for k, v := range f.series {
				values[k] = float64(v.Load())
			}
			f.mu.Unlock()
		}
		keys := make([]string, 0, len(values))
		for k := range values {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			v := values[k]
			if f.label == "" {
				fmt.Fprintf(&b, "%s %s\n", f.name, formatFloat(v))
			} else {
				fmt.Fprintf(&b, "%s{%s=%q} %s\n", f.name, f.label, k, formatFloat(v))
			}
		}
	}
	n, err := io.WriteString(w, b.String())
	return int64(n), err
}

func formatFloat(v float64) string {
	if v == math.Trunc(v) && math.Abs(v) < 1e15 {
		return fmt.Sprintf("%d", int64(v))
	}
	return fmt.Sprintf("%g", v)
}

// Handler serves the registry.
func (r *Registry) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		r.WriteTo(w)
	})
}
