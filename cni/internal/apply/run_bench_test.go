package apply

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/asm-cni/asm-cni/cni/test/nettest"
)

// BenchmarkRestoreExec compares one iptables-restore of a pod's rules into a fresh namespace started by run
// (memfd stdio, fork+exec+wait4 on the calling thread) with the same started by os/exec with pipes, as a
// floor would. Run as root: go test -run '^$' -bench RestoreExec ./internal/apply
func BenchmarkRestoreExec(b *testing.B) {
	nettest.RequireTools(b)
	dir := nettest.RequireOracles(b)
	rules, err := os.ReadFile(filepath.Join(dir, "iptables", "cni-plugin", "basic.txt.golden"))
	if err != nil {
		b.Fatal(err)
	}
	restore, ok := lookPath("iptables-nft-restore")
	if !ok {
		b.Skip("no iptables-nft-restore")
	}
	for _, c := range []struct {
		name string
		run  func() error
	}{
		{"run", func() error {
			_, err := run(context.Background(), restore, rules, "--noflush", "--wait")
			return err
		}},
		{"os-exec-pipes", func() error {
			cmd := exec.Command(restore, "--noflush", "--wait")
			cmd.Stdin = bytes.NewReader(rules)
			_, err := cmd.CombinedOutput()
			return err
		}},
	} {
		b.Run(c.name, func(b *testing.B) {
			var total time.Duration
			for i := 0; i < b.N; i++ {
				n := nettest.NewNS(b)
				err := n.Do(func(ns.NetNS) error {
					t0 := time.Now()
					err := c.run()
					total += time.Since(t0)
					return err
				})
				if err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(total.Microseconds())/float64(b.N)/1000, "ms/restore")
		})
	}
}
