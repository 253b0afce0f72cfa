package urlsource

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
)

// Guard decides which addresses a fetch may connect to. It runs in the
// dialer, on the address about to be dialled (after DNS resolution, for
// every connection, redirects included), so that neither a DNS name
// resolving to an internal address (DNS rebinding) nor a redirect reaches
// one. The zero value refuses every non-public address.
type Guard struct {
	// AllowPrivate opens every address (--allow-private-networks).
	AllowPrivate bool
	// Allow opens these networks even when they are not public.
	Allow []netip.Prefix
}

// ErrBlockedAddress is wrapped by the errors of refused connections.
var ErrBlockedAddress = errors.New("address refused (not a public address; --allow-private-networks or an allowed CIDR opens it)")

// nonPublic are the networks refused unless opened, beyond what the
// netip predicates cover (loopback, RFC 1918 and ULA fc00::/7, link-local
// including 169.254.169.254, multicast, unspecified).
var nonPublic = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),          // "this network"
	netip.MustParsePrefix("100.64.0.0/10"),      // CGNAT (RFC 6598)
	netip.MustParsePrefix("192.0.0.0/24"),       // IETF protocol assignments
	netip.MustParsePrefix("198.18.0.0/15"),      // benchmarking
	netip.MustParsePrefix("240.0.0.0/4"),        // reserved, broadcast
	netip.MustParsePrefix("::ffff:0:0/96"),      // IPv4-mapped
	netip.MustParsePrefix("64:ff9b::/96"),       // NAT64: reaches IPv4 behind the gateway
	netip.MustParsePrefix("64:ff9b:1::/48"),     // local-use NAT64
	netip.MustParsePrefix("2002::/16"),          // 6to4: embeds any IPv4 address
	netip.MustParsePrefix("100::/64"),           // discard-only
	netip.MustParsePrefix("fec0::/10"),          // site-local (deprecated)
	netip.MustParsePrefix("2001:db8::/32"),      // documentation
	netip.MustParsePrefix("2001::/32"),          // Teredo: embeds an IPv4 address
	netip.MustParsePrefix("255.255.255.255/32"), // broadcast
}

// Check returns nil when ip may be dialled, else an error wrapping
// ErrBlockedAddress.
func (g Guard) Check(ip netip.Addr) error {
	if g.AllowPrivate {
		return nil
	}
	for _, p := range g.Allow {
		if p.Contains(ip) || (ip.Is4In6() && p.Contains(ip.Unmap())) {
			return nil
		}
	}
	if !ip.IsValid() || ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
		ip.IsInterfaceLocalMulticast() || ip.IsMulticast() || ip.IsUnspecified() {
		return fmt.Errorf("%s: %w", ip, ErrBlockedAddress)
	}
	for _, p := range nonPublic {
		if p.Contains(ip) {
			return fmt.Errorf("%s: %w", ip, ErrBlockedAddress)
		}
	}
	return nil
}

// control is the net.Dialer's Control: address is the resolved IP:port.
func (g Guard) control(network, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return fmt.Errorf("dial %s: %w", address, err)
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return fmt.Errorf("dial %s: %w", address, err)
	}
	if err := g.Check(ip); err != nil {
		return fmt.Errorf("dial %s %s: %w", network, address, err)
	}
	return nil
}
