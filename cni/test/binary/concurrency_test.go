package binary_test

import (
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/asm-cni/asm-cni/cni/test/nettest"
)

// 20 ADDs for 20 pods at once all succeed (the legacy backend serialises on the xtables lock), and each pod
// namespace holds exactly its own rules: half the pods are plain, half use a custom proxy UID.
func TestConcurrentAdds(t *testing.T) {
	dir := nettest.RequireOracles(t)
	f := newFixture(t)
	for _, backend := range []string{"auto", "legacy"} {
		t.Run(backend, func(t *testing.T) {
			want := f.backend
			extra := map[string]any{}
			if backend != "auto" {
				want, extra["iptables_backend"] = backend, backend
			}
			const n = 20
			pods := make([]ns.NetNS, n)
			golden := map[string]string{}
			for _, c := range []string{"basic", "custom-uid"} {
				golden[c] = nettest.Normalize(nettest.ReadFile(t, filepath.Join(dir, "iptables", "cni-plugin-iptables-save", c+"."+want+".iptables-save")))
			}
			kind := func(i int) string {
				if i%2 == 0 {
					return "basic"
				}
				return "custom-uid"
			}
			for i := range pods {
				pods[i] = nettest.NewNS(t)
				name := fmt.Sprintf("pod-%d", i)
				var sc map[string]any
				if kind(i) == "custom-uid" {
					sc = nettest.OracleCases[3].ProxySC
				}
				f.api.SetPod(t, "default", name, nettest.Pod("default", name, nil, sc))
			}
			outs := make([]nettest.Outcome, n)
			var wg sync.WaitGroup
			start := make(chan struct{})
			for i := range pods {
				wg.Add(1)
				go func(i int) {
					defer wg.Done()
					<-start
					outs[i] = nettest.RunPlugin(t, f.node, nettest.Invocation{Command: "ADD", Netns: pods[i].Path(),
						ContainerID: fmt.Sprintf("container%02d", i), Args: podArgs("default", fmt.Sprintf("pod-%d", i)),
						Config: f.conf(t, "1.0.0", prevResult("1.0.0", pods[i].Path()), extra)})
				}(i)
			}
			close(start)
			wg.Wait()
			for i := range pods {
				mustSucceed(t, fmt.Sprintf("ADD pod-%d", i), outs[i])
				if got := nettest.Save(t, pods[i], want, false); got != golden[kind(i)] {
					t.Fatalf("pod-%d (%s): rules differ from the golden\n--- got\n%s--- want\n%s", i, kind(i), got, golden[kind(i)])
				}
			}
		})
	}
}
