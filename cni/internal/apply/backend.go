package apply

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Backend is the iptables flavour used for a pod: the node's own, so that an admin inspecting the node with
// the node's iptables sees the pod's rules, and so the kernel never has both nft and legacy tables loaded
// for one reason only.
type Backend struct {
	Name   string // "nft" or "legacy"
	Reason string // how it was chosen, for the log
	// Commands per family: restore, save, and the plain command (for -C).
	Restore4, Save4, Cmd4 string
	Restore6, Save6, Cmd6 string
}

// fallbackDirs are searched when PATH (the runtime's environment) does not hold the iptables binaries.
var fallbackDirs = []string{"/usr/sbin", "/sbin", "/usr/local/sbin", "/usr/bin", "/bin"}

func lookPath(name string) (string, bool) {
	if p, err := exec.LookPath(name); err == nil {
		return p, true
	}
	for _, d := range fallbackDirs {
		p := filepath.Join(d, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p, true
		}
	}
	return "", false
}

// variant returns the commands of one flavour ("nft", "legacy", or "" for the unsuffixed iptables-restore).
func variant(name string) (Backend, bool) {
	suffix := ""
	if name != "" {
		suffix = "-" + name
	}
	b := Backend{Name: name}
	var ok bool
	for _, x := range []struct {
		dst  *string
		base string
	}{
		{&b.Restore4, "iptables" + suffix + "-restore"}, {&b.Save4, "iptables" + suffix + "-save"}, {&b.Cmd4, "iptables" + suffix},
		{&b.Restore6, "ip6tables" + suffix + "-restore"}, {&b.Save6, "ip6tables" + suffix + "-save"}, {&b.Cmd6, "ip6tables" + suffix},
	} {
		if *x.dst, ok = lookPath(x.base); !ok {
			return b, false
		}
	}
	return b, true
}

// DetectBackend chooses the iptables flavour. mode "nft" or "legacy" forces it (config key iptables_backend);
// "auto" follows the node, looking only at the node's network namespace, read-only:
//  1. only one flavour installed (no iptables-nft-*/iptables-legacy-* pair): use iptables-restore as it is,
//     its flavour read from `iptables --version`;
//  2. the kubelet's hint chains (KUBE-IPTABLES-HINT, KUBE-KUBELET-CANARY in mangle) show which flavour the
//     node's kubelet uses;
//  3. otherwise the flavour holding more rules on the node wins (legacy is only read when its tables exist);
//  4. nothing anywhere: nft, the default of current distributions.
func DetectBackend(mode string) (Backend, error) {
	switch mode {
	case "nft", "legacy":
		b, ok := variant(mode)
		if !ok {
			if g, gok := variant(""); gok && genericFlavour(g.Cmd4) == mode {
				g.Name, g.Reason = mode, "iptables_backend: "+mode+" (unsuffixed iptables is "+mode+")"
				return g, nil
			}
			return Backend{}, fmt.Errorf("iptables_backend %q: iptables-%s-restore and friends are not installed on the node", mode, mode)
		}
		b.Reason = "iptables_backend: " + mode
		return b, nil
	}
	nft, nftOK := variant("nft")
	legacy, legacyOK := variant("legacy")
	if !nftOK || !legacyOK {
		g, ok := variant("")
		if !ok {
			if nftOK {
				nft.Reason = "only iptables-nft is installed"
				return nft, nil
			}
			if legacyOK {
				legacy.Reason = "only iptables-legacy is installed"
				return legacy, nil
			}
			return Backend{}, fmt.Errorf("no iptables-restore found on the node (PATH and %s)", strings.Join(fallbackDirs, ", "))
		}
		g.Name = genericFlavour(g.Cmd4)
		g.Reason = "single iptables installation (" + g.Name + ")"
		return g, nil
	}
	// Each flavour's mangle table is read once (one exec) for both hints; legacy only when its tables exist.
	legacyLoaded := legacyTablesLoaded()
	nftMangle := saveOut(nft.Save4, "mangle")
	legacyMangle := ""
	if legacyLoaded {
		legacyMangle = saveOut(legacy.Save4, "mangle")
	}
	for _, hint := range []string{"KUBE-IPTABLES-HINT", "KUBE-KUBELET-CANARY"} {
		if strings.Contains(nftMangle, ":"+hint+" ") {
			nft.Reason = "kubelet hint chain " + hint + " is in nft"
			return nft, nil
		}
		if strings.Contains(legacyMangle, ":"+hint+" ") {
			legacy.Reason = "kubelet hint chain " + hint + " is in legacy"
			return legacy, nil
		}
	}
	if legacyLoaded {
		nRules, lRules := countRules(saveOut(nft.Save4, "")), countRules(saveOut(legacy.Save4, ""))
		if lRules > nRules {
			legacy.Reason = fmt.Sprintf("the node has %d legacy rules and %d nft rules", lRules, nRules)
			return legacy, nil
		}
	}
	nft.Reason = "default (no legacy rules on the node)"
	return nft, nil
}

// legacyTablesLoaded avoids running iptables-legacy-save (which would load the legacy kernel modules) on a
// node that never used legacy iptables.
func legacyTablesLoaded() bool {
	b, err := os.ReadFile("/proc/thread-self/net/ip_tables_names")
	return err == nil && len(bytes.TrimSpace(b)) > 0
}

func genericFlavour(cmd string) string {
	out, _ := run(context.Background(), cmd, nil, "--version")
	if strings.Contains(out, "legacy") {
		return "legacy"
	}
	return "nft"
}

func saveOut(save, table string) string {
	args := []string{}
	if table != "" {
		args = append(args, "-t", table)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, _ := run(ctx, save, nil, args...)
	return out
}

func countRules(save string) int {
	n := 0
	for _, l := range strings.Split(save, "\n") {
		if strings.HasPrefix(l, "-A ") {
			n++
		}
	}
	return n
}

// run executes a command (in the calling thread's network namespace) and returns stdout; on failure the
// error carries stderr. See start.
func run(ctx context.Context, cmd string, stdin []byte, args ...string) (string, error) {
	p, err := start(ctx, cmd, stdin, args...)
	if err != nil {
		if errors.Is(err, errNoMemfd) {
			return runPiped(ctx, cmd, stdin, args...)
		}
		return "", err
	}
	return p.wait()
}

var errNoMemfd = errors.New("memfd_create not available")

// proc is a started command (see start).
type proc struct {
	ctx           context.Context
	cmd           string
	args          []string
	pid           int
	in, out, errf *os.File
	mu            sync.Mutex
	reaped        bool
	timer         *time.Timer
}

// start starts a command in the calling thread's network namespace. Standard input, output and error are
// in-memory files (memfd), not pipes, and the command is forked on the calling thread and later reaped with
// wait4: no copying goroutines and no extra process (os/exec probes pidfd support with a throwaway child on its
// first use), so everything stays on the calling, namespace-locked thread instead of waking other threads,
// which costs milliseconds per exec on a busy node. The deadline of ctx kills the command.
//
// Kept over os/exec because it is measured to matter: BenchmarkRestoreExec (run_bench_test.go; 2-core AMD EPYC,
// busy machine, 2026-12-04) gave 3.4-3.6 ms per iptables-restore with start/wait against 5.3-8.1 ms with os/exec
// and pipes; an ADD runs one restore per family, and the plugin's ADD median is about 13 ms (bench/results.md),
// so os/exec would add roughly a fifth to every pod's network setup. The pipe fallback (runPiped) is os/exec.
func start(ctx context.Context, cmd string, stdin []byte, args ...string) (*proc, error) {
	fail := func(err error) error {
		return fmt.Errorf("%s %s: %v", filepath.Base(cmd), strings.Join(args, " "), err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fail(err)
	}
	p := &proc{ctx: ctx, cmd: cmd, args: args}
	var err error
	if p.in, err = memFile("asm-cni-stdin", stdin); err != nil {
		return nil, errNoMemfd
	}
	if p.out, err = memFile("asm-cni-stdout", nil); err != nil {
		p.close()
		return nil, errNoMemfd
	}
	if p.errf, err = memFile("asm-cni-stderr", nil); err != nil {
		p.close()
		return nil, errNoMemfd
	}
	p.pid, err = syscall.ForkExec(cmd, append([]string{cmd}, args...), &syscall.ProcAttr{
		Env:   os.Environ(),
		Files: []uintptr{p.in.Fd(), p.out.Fd(), p.errf.Fd()},
	})
	if err != nil {
		p.close()
		return nil, fail(err)
	}
	if dl, ok := ctx.Deadline(); ok {
		// The timer kills only while the child is unreaped (so its pid cannot have been reused).
		p.timer = time.AfterFunc(time.Until(dl), func() {
			p.mu.Lock()
			defer p.mu.Unlock()
			if !p.reaped {
				_ = syscall.Kill(p.pid, syscall.SIGKILL)
			}
		})
	}
	return p, nil
}

func (p *proc) close() {
	for _, f := range []*os.File{p.in, p.out, p.errf} {
		if f != nil {
			_ = f.Close()
		}
	}
}

// wait reaps the command and returns its stdout; a non-zero exit or a signal is an error carrying stderr.
func (p *proc) wait() (string, error) {
	defer p.close()
	if p.timer != nil {
		defer p.timer.Stop()
	}
	var err error
	for {
		// WNOWAIT first: the child stays a zombie (its pid reserved) until reaped under the lock below.
		var info unix.Siginfo
		err = unix.Waitid(unix.P_PID, p.pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if err != syscall.EINTR {
			break
		}
	}
	var ws syscall.WaitStatus
	if err == nil {
		p.mu.Lock()
		for {
			_, err = syscall.Wait4(p.pid, &ws, 0, nil)
			if err != syscall.EINTR {
				break
			}
		}
		p.reaped = true
		p.mu.Unlock()
	}
	switch {
	case err != nil:
		err = fmt.Errorf("wait: %w", err)
	case ws.Signaled() && p.ctx.Err() != nil:
		err = fmt.Errorf("killed after the timeout (%v)", p.ctx.Err())
	case ws.Signaled():
		err = fmt.Errorf("signal: %v", ws.Signal())
	case ws.ExitStatus() != 0:
		err = fmt.Errorf("exit status %d", ws.ExitStatus())
	}
	stdout := readAll(p.out)
	if err != nil {
		return stdout, cmdError(p.cmd, p.args, err, stdout, readAll(p.errf))
	}
	return stdout, nil
}

// runPiped is run with pipes, for kernels without memfd_create.
func runPiped(ctx context.Context, cmd string, stdin []byte, args ...string) (string, error) {
	c := exec.CommandContext(ctx, cmd, args...)
	if stdin != nil {
		c.Stdin = bytes.NewReader(stdin)
	}
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr = &out, &errb
	if err := c.Run(); err != nil {
		return out.String(), cmdError(cmd, args, err, out.String(), errb.String())
	}
	return out.String(), nil
}

func cmdError(cmd string, args []string, err error, stdout, stderr string) error {
	msg := strings.TrimSpace(stderr)
	if msg == "" {
		msg = strings.TrimSpace(stdout)
	}
	return fmt.Errorf("%s %s: %v: %s", filepath.Base(cmd), strings.Join(args, " "), err, msg)
}

// memfdCreate is unix.MemfdCreate (a variable so tests can take it away, as old kernels do).
var memfdCreate = unix.MemfdCreate

// memFile is an anonymous in-memory file holding data, positioned at its start.
func memFile(name string, data []byte) (*os.File, error) {
	fd, err := memfdCreate(name, unix.MFD_CLOEXEC)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), name)
	if len(data) > 0 {
		if _, err := f.Write(data); err != nil {
			f.Close()
			return nil, err
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			f.Close()
			return nil, err
		}
	}
	return f, nil
}

func readAll(f *os.File) string {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return ""
	}
	b, _ := io.ReadAll(f)
	return string(b)
}
