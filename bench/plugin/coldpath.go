package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// pluginSessionFile is where the plugin keeps its TLS session with the API server (cni/internal/kube/session.go, in
// the plugin's state directory apply.DefaultStateDir).
const pluginSessionFile = "/var/run/asm-cni/tls-session"

// coldPath times, pod by pod in one alternating sequence, the floor, the plugin's ADD as shipped, its what-if
// variants and the lookup prototypes (probe.go), so that every figure of the comparison meets the same machine state.
func coldPath(o options, res *results, fl *floor, pl *pluginRunner, url string, podTemplate []byte) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	rsaCA, rsaCert, rsaKey, err := writeRSACerts(o.workdir)
	if err != nil {
		return err
	}
	rsaAPI, err := startAPIServer(rsaCert, rsaKey, podTemplate)
	if err != nil {
		return err
	}
	defer rsaAPI.Close()
	socket := filepath.Join(o.workdir, "agent.sock")
	ag, err := startAgent(socket, url, fl.pool)
	if err != nil {
		return err
	}
	defer ag.Close()
	probe := func(mode string, i int) func() (float64, float64, error) {
		u, ca := url, o.caFile
		if m, ok := strings.CutSuffix(mode, "-rsa"); ok {
			mode, u, ca = m, rsaAPI.URL, rsaCA
		}
		return func() (float64, float64, error) {
			cmd := exec.Command(self, "probe", mode, "-url", u, "-ca", ca, "-socket", socket,
				"-pod", fmt.Sprintf("bench/probe-%d", i))
			cmd.Stderr = os.Stderr
			return timeExecCPU(cmd)
		}
	}
	v6 := len(res.Families) == 2
	inNewNetns := func(tag string, i int, f func(ns string) (float64, float64, error)) func() (float64, float64, error) {
		return func() (float64, float64, error) {
			ns, err := newNetns(fmt.Sprintf("%s%d", tag, 5000+i), i)
			if err != nil {
				return 0, 0, err
			}
			defer deleteNetns(ns)
			wall, cpu, err := f(ns)
			if err == nil && o.verify {
				err = verifyRules(ns, v6)
			}
			return wall, cpu, err
		}
	}
	type step struct {
		name string
		run  func(i int) func() (float64, float64, error)
		then string // the step that always runs right after this one (a block), or ""
	}
	// fullAdd is an ADD with no session to resume (as after a reboot): the plugin does a full handshake and saves one.
	fullAdd := func(p *pluginRunner, tag string) func(i int) func() (float64, float64, error) {
		return func(i int) func() (float64, float64, error) {
			return inNewNetns(tag, i, func(ns string) (float64, float64, error) {
				if err := os.Remove(pluginSessionFile); err != nil && !os.IsNotExist(err) {
					return 0, 0, err
				}
				return p.run("ADD", ns, 5000+i, nil)
			})
		}
	}
	rsaPl := *pl
	rsaPl.kubeconfig = filepath.Join(o.workdir, "asm-cni-kubeconfig-rsa")
	rsaCAPEM, err := os.ReadFile(rsaCA)
	if err != nil {
		return err
	}
	if err := writeKubeconfig(rsaPl.kubeconfig, rsaAPI.URL, rsaCAPEM); err != nil {
		return err
	}
	probeStep := func(name, mode string) step {
		return step{name: name, run: func(i int) func() (float64, float64, error) { return probe(mode, i) }}
	}
	execStep := func(name string, argv ...string) step {
		return step{name: name, run: func(int) func() (float64, float64, error) {
			return func() (float64, float64, error) { return timeExecCPU(exec.Command(argv[0], argv[1:]...)) }
		}}
	}
	steps := []step{
		{name: "floor", run: func(i int) func() (float64, float64, error) {
			return inNewNetns("cf", i, func(ns string) (float64, float64, error) {
				get, rest, err := fl.run(ns)
				return get + rest, 0, err // in-process: no CPU time of its own
			})
		}},
		// A full handshake, then an ADD that resumes the session it saved: one block, so that the plugin's single
		// session file holds the right server's session when the second runs.
		{name: "addFullHandshake", run: fullAdd(pl, "ch"), then: "add"},
		{name: "add", run: func(i int) func() (float64, float64, error) {
			return inNewNetns("ca", i, func(ns string) (float64, float64, error) { return pl.run("ADD", ns, 5000+i, nil) })
		}},
		{name: "addFullHandshakeRSA", run: fullAdd(&rsaPl, "cr"), then: "addRSA"},
		{name: "addRSA", run: func(i int) func() (float64, float64, error) {
			return inNewNetns("cs", i, func(ns string) (float64, float64, error) { return rsaPl.run("ADD", ns, 5000+i, nil) })
		}},
		execStep("version", o.plugin, "version"),
		execStep("true", "/bin/true"),
		probeStep("probeStart", "start"),
		probeStep("probeGet", "get"),
		probeStep("probeGetRSA", "get-rsa"),
		probeStep("probeAgent", "agent"),
	}
	if o.agentPlugin != "" {
		ap := *pl
		ap.bin = o.agentPlugin
		steps = append(steps, step{name: "addAgent", run: func(i int) func() (float64, float64, error) {
			return inNewNetns("cg", i, func(ns string) (float64, float64, error) {
				return ap.run("ADD", ns, 5000+i, []string{"ASM_CNI_BENCH_AGENT=" + socket})
			})
		}})
	}
	if o.goStart != "" {
		steps = append(steps, execStep("goStart", o.goStart))
	}
	logf("cold path: %d rounds of %d steps, in rotating order", o.coldPathPods, len(steps))
	res.ColdPath = map[string][]float64{}
	res.ColdPathCPU = map[string][]float64{}
	res.ColdPathPods = o.coldPathPods
	// Blocks: a step with `then` and the step after it always run together, in that order.
	var blocks [][]step
	for k := 0; k < len(steps); k++ {
		b := []step{steps[k]}
		if steps[k].then != "" {
			if k+1 >= len(steps) || steps[k+1].name != steps[k].then {
				return fmt.Errorf("cold path: %s must be followed by %s", steps[k].name, steps[k].then)
			}
			k++
			b = append(b, steps[k])
		}
		blocks = append(blocks, b)
	}
	for i := 0; i < o.coldPathPods; i++ {
		for k := range blocks {
			for _, s := range blocks[(i+k)%len(blocks)] {
				wall, cpu, err := s.run(i)()
				if err != nil {
					return fmt.Errorf("%s (pod %d): %w", s.name, i, err)
				}
				res.ColdPath[s.name] = append(res.ColdPath[s.name], wall)
				if cpu > 0 {
					res.ColdPathCPU[s.name] = append(res.ColdPathCPU[s.name], cpu)
				}
			}
		}
	}
	res.AgentRequests = ag.requests.Load()
	// Every agent probe and every ADD of the agent prototype must have been answered by the agent, not by a fallback.
	if want := int64(len(res.ColdPath["probeAgent"]) + len(res.ColdPath["addAgent"])); res.AgentRequests != want {
		return fmt.Errorf("the agent answered %d requests, expected %d (the prototype fell back to its own GET)",
			res.AgentRequests, want)
	}
	res.InitMs, err = packageInit(o.plugin, 20)
	return err
}

// packageInit runs `plugin version` with GODEBUG=inittrace=1 n times and returns, per run, the sum of the clock time
// of every package's init: what the binary does before main.
func packageInit(plugin string, n int) ([]float64, error) {
	var out []float64
	for i := 0; i < n; i++ {
		cmd := exec.Command(plugin, "version")
		cmd.Env = append(os.Environ(), "GODEBUG=inittrace=1")
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil {
			return nil, fmt.Errorf("%s version: %w", plugin, err)
		}
		total, found := 0.0, 0
		for _, line := range strings.Split(stderr.String(), "\n") {
			// init PACKAGE @START ms, CLOCK ms clock, BYTES bytes, ALLOCS allocs
			f := strings.Fields(line)
			if len(f) >= 7 && f[0] == "init" && f[6] == "clock," {
				if v, err := strconv.ParseFloat(f[4], 64); err == nil {
					total += v
					found++
				}
			}
		}
		if found == 0 {
			return nil, fmt.Errorf("GODEBUG=inittrace=1 printed no init lines: %.300s", stderr.String())
		}
		out = append(out, total)
	}
	return out, nil
}
