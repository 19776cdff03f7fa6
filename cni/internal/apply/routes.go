package apply

import (
	"errors"
	"fmt"
	"net"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// PolicyRoute is TPROXY's policy routing: packets carrying Mark are looked up in Table, which routes
// everything to the local host via lo (`ip rule add fwmark MARK lookup TABLE`,
// `ip route add local default dev lo table TABLE`). All functions act on the calling thread's netns.
type PolicyRoute struct {
	Mark  uint32
	Table int
}

func families(v6 bool) []int {
	if v6 {
		return []int{netlink.FAMILY_V4, netlink.FAMILY_V6}
	}
	return []int{netlink.FAMILY_V4}
}

func (p PolicyRoute) rules(family int) ([]netlink.Rule, error) {
	all, err := netlink.RuleList(family)
	if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
		return nil, err
	}
	var ours []netlink.Rule
	for _, r := range all {
		if r.Mark == p.Mark && r.Table == p.Table {
			ours = append(ours, r)
		}
	}
	return ours, nil
}

func defaultDst(family int) *net.IPNet {
	if family == netlink.FAMILY_V6 {
		return &net.IPNet{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)}
	}
	return &net.IPNet{IP: net.IPv4zero, Mask: net.CIDRMask(0, 32)}
}

func (p PolicyRoute) localRoute(family int, lo netlink.Link) *netlink.Route {
	return &netlink.Route{
		LinkIndex: lo.Attrs().Index,
		Dst:       defaultDst(family),
		Table:     p.Table,
		Type:      unix.RTN_LOCAL,
		Scope:     netlink.SCOPE_HOST,
		Family:    family,
	}
}

// Setup adds the rule and route once per family, whatever is there already (idempotent).
func (p PolicyRoute) Setup(v6 bool) error {
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("TPROXY routing: no lo interface: %w", err)
	}
	for _, fam := range families(v6) {
		existing, err := p.rules(fam)
		if err != nil {
			return fmt.Errorf("TPROXY routing: listing ip rules: %w", err)
		}
		if len(existing) == 0 {
			r := netlink.NewRule()
			r.Family, r.Mark, r.Table = fam, p.Mark, p.Table
			if err := netlink.RuleAdd(r); err != nil {
				return fmt.Errorf("TPROXY routing: ip rule add fwmark %d lookup %d (family %d): %w", p.Mark, p.Table, fam, err)
			}
		}
		if err := netlink.RouteReplace(p.localRoute(fam, lo)); err != nil {
			return fmt.Errorf("TPROXY routing: ip route replace local default dev lo table %d (family %d): %w", p.Table, fam, err)
		}
	}
	return nil
}

// Remove deletes our rules and the routes of our table, in both families; absent ones are fine.
func (p PolicyRoute) Remove() error {
	var errs []error
	for _, fam := range families(true) {
		rules, err := p.rules(fam)
		if err != nil {
			if fam == netlink.FAMILY_V6 {
				continue // IPv6 disabled in the namespace
			}
			errs = append(errs, err)
			continue
		}
		for i := range rules {
			if err := netlink.RuleDel(&rules[i]); err != nil && !errors.Is(err, unix.ENOENT) {
				errs = append(errs, fmt.Errorf("ip rule del fwmark %d lookup %d: %w", p.Mark, p.Table, err))
			}
		}
		routes, err := netlink.RouteListFiltered(fam, &netlink.Route{Table: p.Table}, netlink.RT_FILTER_TABLE)
		if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
			continue
		}
		for i := range routes {
			if err := netlink.RouteDel(&routes[i]); err != nil && !errors.Is(err, unix.ESRCH) {
				errs = append(errs, fmt.Errorf("ip route del table %d: %w", p.Table, err))
			}
		}
	}
	return errors.Join(errs...)
}

// Check reports what of the policy routing is missing.
func (p PolicyRoute) Check(v6 bool) []string {
	var missing []string
	for _, fam := range families(v6) {
		name := "-4"
		if fam == netlink.FAMILY_V6 {
			name = "-6"
		}
		if rules, err := p.rules(fam); err != nil || len(rules) == 0 {
			missing = append(missing, fmt.Sprintf("ip %s rule fwmark %d lookup %d", name, p.Mark, p.Table))
		}
		routes, err := netlink.RouteListFiltered(fam, &netlink.Route{Table: p.Table}, netlink.RT_FILTER_TABLE)
		found := false
		for _, r := range routes {
			if r.Type == unix.RTN_LOCAL && (r.Dst == nil || isDefault(r.Dst)) {
				found = true
			}
		}
		if err != nil || !found {
			missing = append(missing, fmt.Sprintf("ip %s route local default dev lo table %d", name, p.Table))
		}
	}
	return missing
}

func isDefault(n *net.IPNet) bool {
	ones, _ := n.Mask.Size()
	return ones == 0 && n.IP.IsUnspecified()
}
