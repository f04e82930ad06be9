package outbound

import (
	"fmt"
	"net/netip"
	"strings"
)

// Policy decides which addresses outbound requests may reach: public
// unicast addresses, and what the operator allowed.
type Policy struct {
	prefixes []netip.Prefix
	hosts    map[string]bool
}

// ParsePolicy reads allow-list entries: CIDRs (10.0.0.0/8, fd00::/8), single
// addresses (a /32 or /128), or host names.
func ParsePolicy(entries []string) (Policy, error) {
	p := Policy{hosts: map[string]bool{}}
	for _, e := range entries {
		e = strings.TrimSpace(e)
		if e == "" {
			continue
		}
		if strings.Contains(e, "/") {
			pr, err := netip.ParsePrefix(e)
			if err != nil {
				return p, fmt.Errorf("--allow-outbound %q: not a CIDR (%v)", e, err)
			}
			p.prefixes = append(p.prefixes, pr.Masked())
			continue
		}
		if a, err := netip.ParseAddr(strings.Trim(e, "[]")); err == nil {
			p.prefixes = append(p.prefixes, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
			continue
		}
		h := normalizeHost(e)
		if !validHostName(h) {
			return p, fmt.Errorf("--allow-outbound %q: want a CIDR, an address or a host name", e)
		}
		p.hosts[h] = true
	}
	return p, nil
}

func validHostName(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				return false
			}
		}
	}
	return true
}

// HostAllowed reports whether the operator allowed a host name.
func (p Policy) HostAllowed(host string) bool { return p.hosts[normalizeHost(host)] }

// Check returns nil if a may be reached, else an *Error of class
// "destination not allowed".
func (p Policy) Check(a netip.Addr) error {
	for _, pr := range p.prefixes {
		if pr.Contains(a) || pr.Contains(a.Unmap()) {
			return nil
		}
	}
	if why := special(a); why != "" {
		return Errorf(ClassNotAllowed, "%s is %s", a, why)
	}
	return nil
}

// Ranges no tenant-chosen request may reach (IANA special-purpose
// registries, RFC 6890 and successors).
var (
	denied4 = []struct {
		p   netip.Prefix
		why string
	}{
		{netip.MustParsePrefix("0.0.0.0/8"), "this network"},
		{netip.MustParsePrefix("10.0.0.0/8"), "private"},
		{netip.MustParsePrefix("100.64.0.0/10"), "shared address space (CGNAT)"},
		{netip.MustParsePrefix("127.0.0.0/8"), "loopback"},
		{netip.MustParsePrefix("169.254.0.0/16"), "link-local"},
		{netip.MustParsePrefix("172.16.0.0/12"), "private"},
		{netip.MustParsePrefix("192.0.0.0/24"), "IETF protocol assignments"},
		{netip.MustParsePrefix("192.0.2.0/24"), "documentation"},
		{netip.MustParsePrefix("192.31.196.0/24"), "AS112"},
		{netip.MustParsePrefix("192.52.193.0/24"), "AMT"},
		{netip.MustParsePrefix("192.88.99.0/24"), "6to4 relay anycast"},
		{netip.MustParsePrefix("192.168.0.0/16"), "private"},
		{netip.MustParsePrefix("192.175.48.0/24"), "AS112"},
		{netip.MustParsePrefix("198.18.0.0/15"), "benchmarking"},
		{netip.MustParsePrefix("198.51.100.0/24"), "documentation"},
		{netip.MustParsePrefix("203.0.113.0/24"), "documentation"},
		{netip.MustParsePrefix("224.0.0.0/4"), "multicast"},
		{netip.MustParsePrefix("240.0.0.0/4"), "reserved or broadcast"},
	}
	denied6 = []struct {
		p   netip.Prefix
		why string
	}{
		{netip.MustParsePrefix("::/128"), "unspecified"},
		{netip.MustParsePrefix("::1/128"), "loopback"},
		{netip.MustParsePrefix("::/96"), "IPv4-compatible (deprecated)"},
		{netip.MustParsePrefix("64:ff9b:1::/48"), "local-use IPv4/IPv6 translation"},
		{netip.MustParsePrefix("100::/64"), "discard-only"},
		{netip.MustParsePrefix("2001::/23"), "IETF protocol assignments (Teredo, benchmarking, ORCHID)"},
		{netip.MustParsePrefix("2001:db8::/32"), "documentation"},
		{netip.MustParsePrefix("3fff::/20"), "documentation"},
		{netip.MustParsePrefix("5f00::/16"), "segment routing"},
		{netip.MustParsePrefix("fc00::/7"), "unique local (private)"},
		{netip.MustParsePrefix("fe80::/10"), "link-local"},
		{netip.MustParsePrefix("fec0::/10"), "site-local (deprecated)"},
		{netip.MustParsePrefix("ff00::/8"), "multicast"},
	}
	// IPv6 forms that carry an IPv4 address: the embedded address is
	// checked as well.
	mapped     = netip.MustParsePrefix("::ffff:0:0/96")
	translated = netip.MustParsePrefix("::ffff:0:0:0/96")
	nat64      = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour  = netip.MustParsePrefix("2002::/16")
)

// special says why a is not a public unicast address ("" if it is).
func special(a netip.Addr) string {
	if !a.IsValid() {
		return "invalid"
	}
	if a.Zone() != "" {
		return "scoped"
	}
	if a.Is4() {
		for _, d := range denied4 {
			if d.p.Contains(a) {
				return d.why
			}
		}
		return ""
	}
	b := a.As16()
	switch {
	case mapped.Contains(a), translated.Contains(a), nat64.Contains(a):
		if why := special(netip.AddrFrom4([4]byte(b[12:16]))); why != "" {
			return why + " (embedded in IPv6)"
		}
		if mapped.Contains(a) {
			return ""
		}
		if translated.Contains(a) {
			return "IPv4-translated"
		}
		return ""
	case sixToFour.Contains(a):
		if why := special(netip.AddrFrom4([4]byte(b[2:6]))); why != "" {
			return why + " (embedded in 6to4)"
		}
		return ""
	}
	for _, d := range denied6 {
		if d.p.Contains(a) {
			return d.why
		}
	}
	if !a.IsGlobalUnicast() {
		return "not global unicast"
	}
	return ""
}
