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
	session := filepath.Join(o.workdir, "probe-session")
	rsaSession := filepath.Join(o.workdir, "probe-session-rsa")
	probe := func(mode string, i int) func() (float64, float64, error) {
		u, ca, sess := url, o.caFile, session
		if m, ok := strings.CutSuffix(mode, "-rsa"); ok {
			mode, u, ca, sess = m, rsaAPI.URL, rsaCA, rsaSession
		}
		return func() (float64, float64, error) {
			cmd := exec.Command(self, "probe", mode, "-url", u, "-ca", ca, "-session", sess, "-socket", socket,
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
	}
	steps := []step{
		{"floor", func(i int) func() (float64, float64, error) {
			return inNewNetns("cf", i, func(ns string) (float64, float64, error) {
				get, rest, err := fl.run(ns)
				return get + rest, 0, err // in-process: no CPU time of its own
			})
		}},
		{"add", func(i int) func() (float64, float64, error) {
			return inNewNetns("ca", i, func(ns string) (float64, float64, error) { return pl.run("ADD", ns, 5000+i, nil) })
		}},
		{"addFullHandshake", func(i int) func() (float64, float64, error) {
			return inNewNetns("ch", i, func(ns string) (float64, float64, error) {
				// No session to resume (as after a reboot): the plugin does a full handshake and saves a new one.
				if err := os.Remove(pluginSessionFile); err != nil && !os.IsNotExist(err) {
					return 0, 0, err
				}
				return pl.run("ADD", ns, 5000+i, nil)
			})
		}},
		{"version", func(int) func() (float64, float64, error) {
			return func() (float64, float64, error) { return timeExecCPU(exec.Command(o.plugin, "version")) }
		}},
		{"true", func(int) func() (float64, float64, error) {
			return func() (float64, float64, error) { return timeExecCPU(exec.Command("/bin/true")) }
		}},
		{"probeStart", func(i int) func() (float64, float64, error) { return probe("start", i) }},
		{"probeGet", func(i int) func() (float64, float64, error) { return probe("get", i) }},
		{"probeResume", func(i int) func() (float64, float64, error) { return probe("resume", i) }},
		{"probeGetRSA", func(i int) func() (float64, float64, error) { return probe("get-rsa", i) }},
		{"probeResumeRSA", func(i int) func() (float64, float64, error) { return probe("resume-rsa", i) }},
		{"probeAgent", func(i int) func() (float64, float64, error) { return probe("agent", i) }},
	}
	if o.agentPlugin != "" {
		ap := *pl
		ap.bin = o.agentPlugin
		steps = append(steps, step{"addAgent", func(i int) func() (float64, float64, error) {
			return inNewNetns("cg", i, func(ns string) (float64, float64, error) {
				return ap.run("ADD", ns, 5000+i, []string{"ASM_CNI_BENCH_AGENT=" + socket})
			})
		}})
	}
	if o.goStart != "" {
		steps = append(steps, step{"goStart", func(int) func() (float64, float64, error) {
			return func() (float64, float64, error) { return timeExecCPU(exec.Command(o.goStart)) }
		}})
	}
	// The first resume has no session yet: prime the file so every timed probe resumes.
	os.Remove(session)
	os.Remove(rsaSession)
	for _, m := range []string{"resume", "resume-rsa"} {
		if _, _, err := probe(m, -1)(); err != nil {
			return err
		}
	}
	logf("cold path: %d pods, %d steps each, in rotating order", o.coldPathPods, len(steps))
	res.ColdPath = map[string][]float64{}
	res.ColdPathCPU = map[string][]float64{}
	res.ColdPathPods = o.coldPathPods
	for i := 0; i < o.coldPathPods; i++ {
		for k := range steps {
			s := steps[(i+k)%len(steps)]
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
	res.AgentRequests = ag.requests.Load()
	// Every agent probe and every ADD of the agent prototype must have been answered by the agent, not by a fallback.
	if want := int64(len(res.ColdPath["probeAgent"]) + len(res.ColdPath["addAgent"])); res.AgentRequests != want {
		return fmt.Errorf("the agent answered %d requests, expected %d (the prototype fell back to its own GET)", res.AgentRequests, want)
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
