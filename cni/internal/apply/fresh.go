package apply

import (
	"bytes"
	"errors"
	"fmt"
	"os"

	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// tablesPresent reports whether the calling thread's network namespace holds any iptables table of the family
// in the backend's flavour, without running iptables: a pod's fresh namespace has none, and then nothing of
// ours can be there either, so the rendered rules can be restored as they are (no save, no diff) and there is
// nothing to clean up. On any doubt (an error) it answers true, which takes the path that reads the rules.
func (a *Applier) tablesPresent(v6 bool) bool {
	var present bool
	var err error
	if a.Backend.Name == "legacy" {
		present, err = legacyTablesPresent(v6)
	} else {
		present, err = nftTablesPresent(v6)
	}
	if err != nil {
		a.logf("cannot tell whether the pod's namespace has %s tables (%v); reading its rules", famName(v6), err)
		return true
	}
	return present
}

func famName(v6 bool) string {
	if v6 {
		return "IPv6"
	}
	return "IPv4"
}

// legacyTablesPresent reads the kernel's list of the namespace's x_tables (ip_tables_names / ip6_tables_names);
// the file is missing while the module is not loaded, which means no tables.
func legacyTablesPresent(v6 bool) (bool, error) {
	name := "/proc/thread-self/net/ip_tables_names"
	if v6 {
		name = "/proc/thread-self/net/ip6_tables_names"
	}
	b, err := os.ReadFile(name)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return len(bytes.TrimSpace(b)) > 0, nil
}

// nftTablesPresent asks nf_tables over netlink for the namespace's tables of family ip (ip6), the family
// iptables-nft keeps its tables in. Any table counts, ours or not.
func nftTablesPresent(v6 bool) (bool, error) {
	family := uint8(unix.NFPROTO_IPV4)
	if v6 {
		family = unix.NFPROTO_IPV6
	}
	req := nl.NewNetlinkRequest(unix.NFNL_SUBSYS_NFTABLES<<8|unix.NFT_MSG_GETTABLE, unix.NLM_F_DUMP)
	req.AddData(&nl.Nfgenmsg{NfgenFamily: family, Version: unix.NFNETLINK_V0})
	msgs, err := req.Execute(unix.NETLINK_NETFILTER, unix.NFNL_SUBSYS_NFTABLES<<8|unix.NFT_MSG_NEWTABLE)
	if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOENT) {
		return false, nil // nf_tables not loaded: no tables anywhere
	}
	if err != nil {
		return false, fmt.Errorf("nf_tables table dump: %w", err)
	}
	for _, m := range msgs {
		// Each answer starts with its nfgenmsg; the family is checked again in case the kernel ignored ours.
		if len(m) >= nl.SizeofNfgenmsg && m[0] == family {
			return true, nil
		}
	}
	return false, nil
}
