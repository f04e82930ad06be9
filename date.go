package keepwatch

import (
	"encoding/json"
	"time"
)

// Date is a calendar day (UTC), as in "Care Plus until 2027-03-31".
type Date struct{ t time.Time }

// ParseDate parses YYYY-MM-DD. Its errors say what is wrong with the
// date, as a person typing it needs to know: "2027-02-30: February 2027
// has 28 days", not just that it is not a date.
func ParseDate(s string) (Date, error) {
	t, err := time.Parse(time.DateOnly, s)
	if err == nil {
		return Date{t}, nil
	}
	const want = "expected YYYY-MM-DD, e.g. 2027-12-31"
	if len(s) != len("2006-01-02") || s[4] != '-' || s[7] != '-' {
		return Date{}, Errorf(EINVALID, "date %q: %s", s, want)
	}
	num := func(digits string) int {
		n := 0
		for _, c := range []byte(digits) {
			if c < '0' || c > '9' {
				return -1
			}
			n = n*10 + int(c-'0')
		}
		return n
	}
	y, m, d := num(s[:4]), num(s[5:7]), num(s[8:])
	switch {
	case y < 0 || m < 0 || d < 0:
		return Date{}, Errorf(EINVALID, "date %q: %s", s, want)
	case m < 1 || m > 12:
		return Date{}, Errorf(EINVALID, "%s: month %d is not a month (01 to 12)", s, m)
	case d < 1:
		return Date{}, Errorf(EINVALID, "%s: there is no day 0 in a month", s)
	}
	// The day after the month's last is the first of the next month.
	last := time.Date(y, time.Month(m)+1, 0, 0, 0, 0, 0, time.UTC).Day()
	if d > last {
		return Date{}, Errorf(EINVALID, "%s: %s %d has %d days", s, time.Month(m), y, last)
	}
	return Date{}, Errorf(EINVALID, "date %q: %s", s, want)
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
