//go:build asmcni_benchagent

package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/asm-cni/asm-cni/cni/internal/kube"
	"github.com/asm-cni/asm-cni/cni/internal/plugin"
)

// Bench builds only (go build -tags asmcni_benchagent): the node-agent prototype that `npm run bench` measures in its
// plugin cold path (docs/bench.md). With ASM_CNI_BENCH_AGENT set to a unix socket, ADD first asks the agent there for
// the pod (one request line "NS/NAME", answered by a line "STATUS LENGTH" and the pod's JSON) and falls back to its own
// GET on anything but a complete 200 answer (no agent, a refused or cut connection, a short body, a timeout). The shipped binary has no such path.
func init() {
	socket := os.Getenv("ASM_CNI_BENCH_AGENT")
	if socket == "" {
		return
	}
	plugin.GetPod = func(ctx context.Context, kubeconfig, namespace, name string, timeout time.Duration, session *kube.Session) ([]byte, error) {
		if body, err := askAgent(socket, namespace, name, timeout/4); err == nil {
			return body, nil
		}
		return kube.GetPod(ctx, kubeconfig, namespace, name, timeout, session)
	}
}

func askAgent(socket, namespace, name string, budget time.Duration) ([]byte, error) {
	conn, err := net.DialTimeout("unix", socket, budget)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(budget)); err != nil {
		return nil, err
	}
	if _, err := fmt.Fprintf(conn, "%s/%s\n", namespace, name); err != nil {
		return nil, err
	}
	r := bufio.NewReader(conn)
	head, err := r.ReadString('\n')
	if err != nil {
		return nil, err
	}
	status, size, _ := strings.Cut(strings.TrimSpace(head), " ")
	n, err := strconv.Atoi(size)
	if status != "200" || err != nil || n <= 0 || n > 8<<20 {
		return nil, errors.New("agent: answered " + strings.TrimSpace(head))
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return nil, err
	}
	return body, nil
}
