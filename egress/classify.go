package egress

import "net/netip"

// Class is the category of an IP address as far as egress policy is
// concerned. Only ClassPublic is reachable without an AllowPrivate entry.
type Class uint8

// Address classes returned by Classify.
const (
	// ClassPublic is a globally routable unicast address.
	ClassPublic Class = iota
	// ClassUnspecified is 0.0.0.0 or ::; never dialled.
	ClassUnspecified
	// ClassThisNetwork is 0.0.0.0/8 ("this network"); never dialled.
	ClassThisNetwork
	// ClassLoopback is 127.0.0.0/8 or ::1.
	ClassLoopback
	// ClassPrivate is RFC 1918 (10/8, 172.16/12, 192.168/16), IPv6 unique
	// local fc00::/7, deprecated site-local fec0::/10 and local-use NAT64
	// 64:ff9b:1::/48.
	ClassPrivate
	// ClassLinkLocal is 169.254.0.0/16 (including the cloud metadata
	// endpoint 169.254.169.254) or fe80::/10.
	ClassLinkLocal
	// ClassCGNAT is shared address space 100.64.0.0/10.
	ClassCGNAT
	// ClassMulticast is 224.0.0.0/4 or ff00::/8; never dialled.
	ClassMulticast
	// ClassBroadcast is 255.255.255.255; never dialled.
	ClassBroadcast
	// ClassReserved covers documentation, benchmarking, IETF-reserved and
	// future-use ranges, Teredo, IPv4-compatible IPv6 and IPv6 outside
	// 2000::/3 — nothing a legitimate outbound call needs.
	ClassReserved
)

var classNames = [...]string{
	ClassPublic:      "public",
	ClassUnspecified: "unspecified",
	ClassThisNetwork: "this-network (0.0.0.0/8)",
	ClassLoopback:    "loopback",
	ClassPrivate:     "private",
	ClassLinkLocal:   "link-local",
	ClassCGNAT:       "carrier-grade NAT (100.64.0.0/10)",
	ClassMulticast:   "multicast",
	ClassBroadcast:   "broadcast",
	ClassReserved:    "reserved",
}

// String returns a human-readable name of the class, used in refusal reasons.
func (c Class) String() string {
	if int(c) < len(classNames) {
		return classNames[c]
	}
	return "unknown"
}

// IsPublic reports whether the class is ClassPublic.
func (c Class) IsPublic() bool { return c == ClassPublic }

// neverDial reports whether no configuration can make the class reachable.
func (c Class) neverDial() bool {
	switch c {
	case ClassUnspecified, ClassThisNetwork, ClassMulticast, ClassBroadcast:
		return true
	}
	return false
}

type classPrefix struct {
	p netip.Prefix
	c Class
}

var v4Table = []classPrefix{
	{netip.MustParsePrefix("0.0.0.0/8"), ClassThisNetwork},
	{netip.MustParsePrefix("10.0.0.0/8"), ClassPrivate},
	{netip.MustParsePrefix("100.64.0.0/10"), ClassCGNAT},
	{netip.MustParsePrefix("127.0.0.0/8"), ClassLoopback},
	{netip.MustParsePrefix("169.254.0.0/16"), ClassLinkLocal},
	{netip.MustParsePrefix("172.16.0.0/12"), ClassPrivate},
	{netip.MustParsePrefix("192.0.0.0/24"), ClassReserved},
	{netip.MustParsePrefix("192.0.2.0/24"), ClassReserved},
	{netip.MustParsePrefix("192.88.99.0/24"), ClassReserved},
	{netip.MustParsePrefix("192.168.0.0/16"), ClassPrivate},
	{netip.MustParsePrefix("198.18.0.0/15"), ClassReserved},
	{netip.MustParsePrefix("198.51.100.0/24"), ClassReserved},
	{netip.MustParsePrefix("203.0.113.0/24"), ClassReserved},
	{netip.MustParsePrefix("224.0.0.0/4"), ClassMulticast},
	{netip.MustParsePrefix("255.255.255.255/32"), ClassBroadcast},
	{netip.MustParsePrefix("240.0.0.0/4"), ClassReserved},
}

var (
	nat64Prefix      = netip.MustParsePrefix("64:ff9b::/96")
	sixToFourPrefix  = netip.MustParsePrefix("2002::/16")
	v4CompatPrefix   = netip.MustParsePrefix("::/96")
	globalUnicastV6  = netip.MustParsePrefix("2000::/3")
	v6NamedPrefixTab = []classPrefix{
		{netip.MustParsePrefix("64:ff9b:1::/48"), ClassPrivate},
		{netip.MustParsePrefix("100::/64"), ClassReserved},
		{netip.MustParsePrefix("2001::/32"), ClassReserved}, // Teredo
		{netip.MustParsePrefix("2001:db8::/32"), ClassReserved},
		{netip.MustParsePrefix("3fff::/20"), ClassReserved},
		{netip.MustParsePrefix("fc00::/7"), ClassPrivate},
		{netip.MustParsePrefix("fe80::/10"), ClassLinkLocal},
		{netip.MustParsePrefix("fec0::/10"), ClassPrivate},
		{netip.MustParsePrefix("ff00::/8"), ClassMulticast},
	}
)

// Classify returns the egress class of addr. IPv4-mapped IPv6 addresses
// (::ffff:a.b.c.d) are classified as their IPv4 address; NAT64
// (64:ff9b::/96) and 6to4 (2002::/16) addresses embedding a non-public IPv4
// address take that address's class. Zones are ignored. The zero Addr is
// ClassUnspecified.
func Classify(addr netip.Addr) Class {
	if !addr.IsValid() {
		return ClassUnspecified
	}
	addr = addr.WithZone("").Unmap()
	if addr.Is4() {
		return classify4(addr)
	}
	if addr.IsUnspecified() {
		return ClassUnspecified
	}
	if addr.IsLoopback() {
		return ClassLoopback
	}
	b := addr.As16()
	if nat64Prefix.Contains(addr) {
		if c := classify4(netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]})); !c.IsPublic() {
			return c
		}
		return ClassPublic
	}
	if sixToFourPrefix.Contains(addr) {
		if c := classify4(netip.AddrFrom4([4]byte{b[2], b[3], b[4], b[5]})); !c.IsPublic() {
			return c
		}
		return ClassPublic
	}
	if v4CompatPrefix.Contains(addr) {
		return ClassReserved
	}
	for _, e := range v6NamedPrefixTab {
		if e.p.Contains(addr) {
			return e.c
		}
	}
	if !globalUnicastV6.Contains(addr) {
		return ClassReserved
	}
	return ClassPublic
}

func classify4(addr netip.Addr) Class {
	if addr.IsUnspecified() {
		return ClassUnspecified
	}
	for _, e := range v4Table {
		if e.p.Contains(addr) {
			return e.c
		}
	}
	return ClassPublic
}
