package keepwatch

import (
	"encoding/json"
	"time"
)

// Date is a calendar day (UTC), as in "Care Plus until 2027-03-31".
type Date struct{ t time.Time }

// ParseDate parses YYYY-MM-DD.
func ParseDate(s string) (Date, error) {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return Date{}, Errorf(EINVALID, "date %q is not YYYY-MM-DD", s)
	}
	return Date{t}, nil
}

// DateOf returns the UTC calendar day of t.
func DateOf(t time.Time) Date {
	y, m, d := t.UTC().Date()
	return Date{time.Date(y, m, d, 0, 0, 0, 0, time.UTC)}
}

func (d Date) String() string               { return d.t.Format(time.DateOnly) }
func (d Date) Time() time.Time              { return d.t }
func (d Date) IsZero() bool                 { return d.t.IsZero() }
func (d Date) Before(o Date) bool           { return d.t.Before(o.t) }
func (d Date) AddDays(n int) Date           { return Date{d.t.AddDate(0, 0, n)} }
func (d Date) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

func (d *Date) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	p, err := ParseDate(s)
	*d = p
	return err
}

// Duration marshals as whole seconds in JSON, the unit agents and API
// clients use.
type Duration time.Duration

func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(int64(time.Duration(d) / time.Second))
}
