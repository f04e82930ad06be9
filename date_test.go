package keepwatch

import "testing"

func TestDateErrorsSayWhatIsWrong(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"2027-02-30", "2027-02-30: February 2027 has 28 days"},
		{"2028-02-30", "2028-02-30: February 2028 has 29 days"},
		{"2027-04-31", "2027-04-31: April 2027 has 30 days"},
		{"2027-13-01", "2027-13-01: month 13 is not a month (01 to 12)"},
		{"2027-00-10", "2027-00-10: month 0 is not a month (01 to 12)"},
		{"2027-12-00", "2027-12-00: there is no day 0 in a month"},
		{"31/12/2027", `date "31/12/2027": expected YYYY-MM-DD, e.g. 2027-12-31`},
		{"2027-1-5", `date "2027-1-5": expected YYYY-MM-DD, e.g. 2027-12-31`},
		{"2027-0x-05", `date "2027-0x-05": expected YYYY-MM-DD, e.g. 2027-12-31`},
		{"", `date "": expected YYYY-MM-DD, e.g. 2027-12-31`},
	} {
		_, err := ParseDate(c.in)
		if ErrorCode(err) != EINVALID || ErrorMessage(err) != c.want {
			t.Errorf("ParseDate(%q): %v (%s), want %q", c.in, err, ErrorCode(err), c.want)
		}
	}
	for _, ok := range []string{"2028-02-29", "2027-12-31", "2027-01-01"} {
		d, err := ParseDate(ok)
		if err != nil || d.String() != ok {
			t.Errorf("ParseDate(%q) = %v, %v", ok, d, err)
		}
	}
}
