// Package plugin is the CNI protocol side of asm-cni, after containernetworking's plugins/sample: parse the
// config, pass prevResult through, and in between decide (from the pod in the API server) whether the pod gets
// redirection, then program it in the pod's network namespace. Fail closed: a pod that may need redirection
// and cannot be looked up or programmed fails its sandbox setup with a CNI error that says why.
package plugin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/asm-cni/asm-cni/cni/internal/apply"
	"github.com/asm-cni/asm-cni/cni/internal/config"
	"github.com/asm-cni/asm-cni/cni/internal/kube"
	"github.com/asm-cni/asm-cni/cni/internal/netns"
	"github.com/asm-cni/asm-cni/cni/internal/plan"
	"github.com/asm-cni/asm-cni/cni/internal/pod"
)

// SupportedVersions are the CNI spec versions the plugin speaks (CHECK from 0.4.0, STATUS from 1.1.0).
var SupportedVersions = version.PluginSupports("0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")

// Plugin-specific CNI error codes (the spec reserves 0-99; see docs/plugin.md).
const (
	CodeUnauthorized       uint = 101 // the API server refused the plugin's credentials (401)
	CodeForbidden          uint = 102 // RBAC does not allow the plugin to get pods (403)
	CodePodNotFound        uint = 103 // the pod is not in the API server (404)
	CodeBadAPIResponse     uint = 104 // the API server's answer is not a pod
	CodeInvalidAnnotation  uint = 105 // an annotation of the pod has an invalid value
	CodeApplyFailed        uint = 106 // iptables / routing could not be programmed (nothing is left behind)
	CodeRedirectionMissing uint = 107 // CHECK: the pod's rules are not (all) in its netns
)

// Stderr is where logs go besides log_file (a variable for tests).
var Stderr io.Writer = os.Stderr

// Funcs are the CNI commands for skel.PluginMainFuncs. GC is left out: the plugin keeps no state outside the
// pod's own network namespace, so there is nothing to collect.
func Funcs() skel.CNIFuncs {
	return skel.CNIFuncs{Add: CmdAdd, Del: CmdDel, Check: CmdCheck, Status: CmdStatus}
}

func cniErr(code uint, format string, a ...any) *types.Error {
	return types.NewError(code, "asm-cni: "+fmt.Sprintf(format, a...), "")
}

func setup(args *skel.CmdArgs) (*config.Config, *logger, error) {
	conf, err := config.Parse(args.StdinData)
	if err != nil {
		l := newLogger("info", "", Stderr)
		attrs := []any{"container", args.ContainerID, "error", err.Error()}
		if ref, ok := kube.PodFromArgs(args.Args); ok {
			attrs = append(attrs, "pod", ref.Namespace+"/"+ref.Name)
		}
		l.Error("invalid network config", attrs...)
		return nil, l, err
	}
	return conf, newLogger(conf.LogLevel, conf.LogFile, Stderr), nil
}

// target is the pod a call is about, or why there is none.
type target struct {
	ref  kube.PodRef
	skip string // non-empty: pass through without an API call
}

func targetOf(args *skel.CmdArgs, conf *config.Config) target {
	ref, ok := kube.PodFromArgs(args.Args)
	switch {
	case !ok:
		return target{skip: "CNI_ARGS names no Kubernetes pod (K8S_POD_NAMESPACE/K8S_POD_NAME)"}
	case conf.Excluded(ref.Namespace):
		return target{ref: ref, skip: "namespace " + ref.Namespace + " is in exclude_namespaces"}
	}
	return target{ref: ref}
}

// GetPod reads the pod from the API server (a variable only for the bench's node-agent prototype, built with the tag
// asmcni_benchagent; see cmd/asm-cni/benchagent.go).
var GetPod = kube.GetPod

// lookup reads the pod and decides. A nil spec with a nil error means: no redirection for this pod (skip says why).
func lookup(conf *config.Config, t target, c *call) (spec *apply.Spec, skip string, err error) {
	if conf.Kubeconfig == "" {
		return nil, "", config.Error("kubeconfig is required to look up pod %s/%s", t.ref.Namespace, t.ref.Name)
	}
	session := &kube.Session{Path: SessionFile}
	body, err := GetPod(context.Background(), conf.Kubeconfig, t.ref.Namespace, t.ref.Name, conf.APITimeout, session)
	if session.Used {
		c.tlsSession(session.Resumed)
	}
	if err != nil {
		return nil, "", lookupErr(err)
	}
	p, err := pod.Decode(body)
	if err != nil {
		return nil, "", cniErr(CodeBadAPIResponse, "the API server's answer for pod %s/%s is not a pod: %v", t.ref.Namespace, t.ref.Name, err)
	}
	pl, err := plan.For(p, t.ref.Namespace, conf.ExcludeNamespaces)
	if err != nil {
		return nil, "", cniErr(CodeInvalidAnnotation, "pod %s/%s: %v", t.ref.Namespace, t.ref.Name, err)
	}
	for _, w := range pl.Warnings {
		c.l.Warn(w, "pod", t.ref.Namespace+"/"+t.ref.Name)
	}
	return pl.Spec, pl.Skip, nil
}

func lookupErr(err error) error {
	var le *kube.LookupError
	if !errors.As(err, &le) {
		return cniErr(types.ErrInternal, "%v", err)
	}
	switch le.Kind {
	case kube.KindKubeconfig:
		return config.Error("%v", le)
	case kube.KindUnreachable, kube.KindServerError:
		return cniErr(types.ErrTryAgainLater, "%v", le)
	case kube.KindUnauthorized:
		return cniErr(CodeUnauthorized, "%v", le)
	case kube.KindForbidden:
		return cniErr(CodeForbidden, "%v", le)
	case kube.KindNotFound:
		return cniErr(CodePodNotFound, "%v", le)
	default:
		return cniErr(CodeBadAPIResponse, "%v", le)
	}
}

// SessionFile keeps the last TLS session with the API server for the next plugin process to resume (kube/session.go;
// a variable for tests, empty: every lookup does a full handshake).
var SessionFile = filepath.Join(apply.DefaultStateDir, kube.SessionFileName)

// BackendCache remembers the node's auto-detected iptables flavour across plugin calls (a variable for tests).
var BackendCache = apply.BackendCache{Dir: apply.DefaultStateDir, TTL: apply.BackendCacheTTL}

// newApplier chooses the iptables backend and fixes what belongs to asm-cni in a pod's netns.
func newApplier(conf *config.Config, l *logger) (*apply.Applier, error) {
	b, _, note, err := BackendCache.Detect(conf.IptablesBackend)
	if note != "" {
		l.Debugf("%s", note)
	}
	if err != nil {
		return nil, err
	}
	l.Debugf("iptables backend %s (%s)", b.Name, b.Reason)
	return &apply.Applier{
		Backend: b,
		Owned:   plan.Owned(),
		Route:   plan.Route(),
		Logf:    l.Debugf,
	}, nil
}

func hasIPv6(prev types.Result) bool {
	if prev == nil {
		return false
	}
	r, err := current.NewResultFromResult(prev)
	if err != nil {
		return false
	}
	for _, ip := range r.IPs {
		if ip.Address.IP.To4() == nil {
			return true
		}
	}
	return false
}

// passthrough prints the ADD result in the config's cniVersion: prevResult unchanged when there is one. Without
// one (standalone, e.g. a Multus additional network) the result is empty: asm-cni adds no interface, address or
// route, and an empty result is what libcni caches and Multus records for such a network.
func passthrough(conf *config.Config) error {
	if conf.PrevResult == nil {
		return types.PrintResult(&current.Result{CNIVersion: current.ImplementedSpecVersion}, conf.CNIVersion)
	}
	return types.PrintResult(conf.PrevResult, conf.CNIVersion)
}

// missingPrevResult is the error for a chained call without prevResult (standalone mode allows one).
func missingPrevResult(conf *config.Config, why string) error {
	if conf.PrevResult != nil || conf.Standalone {
		return nil
	}
	return config.Error("prevResult is missing: %s (set \"standalone\": true when asm-cni runs as a network of its own, such as a Multus NetworkAttachmentDefinition)", why)
}

// CmdAdd programs the pod's redirection and passes prevResult through unchanged (standalone without prevResult:
// an empty result; IPv6 is then detected from the netns alone). It logs one line saying what it decided.
func CmdAdd(args *skel.CmdArgs) error {
	conf, l, err := setup(args)
	if err != nil {
		return err
	}
	defer l.close()
	c := l.call("ADD", args.ContainerID, args.Netns)
	if err := missingPrevResult(conf, "asm-cni is a chained plugin and must come after the network plugin in a conflist"); err != nil {
		c.done(DecisionFailed, "", err)
		return err
	}
	if conf.PrevResult != nil {
		if _, err := current.NewResultFromResult(conf.PrevResult); err != nil {
			err = config.Error("prevResult cannot be read as a CNI result: %v", err)
			c.done(DecisionFailed, "", err)
			return err
		}
	}
	t := targetOf(args, conf)
	if t.ref.Name != "" {
		c.forPod(t.ref.Namespace, t.ref.Name, t.ref.UID)
	}
	if t.skip != "" {
		c.done(DecisionSkipped, t.skip, nil)
		return passthrough(conf)
	}
	if err := netns.NotHost(args.Netns); err != nil {
		err = cniErr(types.ErrInvalidNetNS, "CNI_NETNS %s: %v", args.Netns, err)
		c.done(DecisionFailed, "", err)
		return err
	}
	start := time.Now()
	spec, skip, err := lookup(conf, t, c)
	c.timeLookup(start)
	if err != nil {
		c.done(DecisionFailed, "", err)
		return err
	}
	if spec == nil {
		c.done(DecisionSkipped, skip, nil)
		return passthrough(conf)
	}
	start = time.Now()
	a, err := newApplier(conf, l)
	if err != nil {
		c.timeRules(start)
		err = cniErr(CodeApplyFailed, "%v", err)
		c.done(DecisionFailed, "", err)
		return err
	}
	res, err := a.Apply(args.Netns, *spec, hasIPv6(conf.PrevResult))
	c.timeRules(start)
	if err != nil {
		err = cniErr(CodeApplyFailed, "redirection for pod %s/%s not applied (nothing left behind): %v", t.ref.Namespace, t.ref.Name, err)
		c.done(DecisionFailed, "", err)
		return err
	}
	c.done(DecisionRedirected, fmt.Sprintf("iptables %s, IPv6 %v, TPROXY %v", a.Backend.Name, res.IPv6, spec.TPROXY), nil)
	return passthrough(conf)
}

// CmdDel removes whatever asm-cni programmed in the pod's netns. It always succeeds: the netns may be gone,
// the pod may be gone from the API server (no API call is made), and a sandbox being torn down must not be
// blocked by cleanup of a namespace that is about to disappear.
func CmdDel(args *skel.CmdArgs) error {
	conf, l, err := setup(args)
	if err != nil {
		// Still clean up with the defaults: an edited config must not leave rules behind.
		conf = &config.Config{IptablesBackend: config.BackendAuto}
	}
	defer l.close()
	c := l.call("DEL", args.ContainerID, args.Netns)
	if ref, ok := kube.PodFromArgs(args.Args); ok {
		c.forPod(ref.Namespace, ref.Name, ref.UID)
	}
	if args.Netns == "" || !netns.Exists(args.Netns) {
		c.done(DecisionSkipped, "network namespace is gone; nothing to remove", nil)
		return nil
	}
	start := time.Now()
	a, err := newApplier(conf, l)
	if err != nil {
		c.timeRules(start)
		c.done(DecisionFailed, "nothing removed", err)
		return nil
	}
	err = a.Remove(args.Netns)
	c.timeRules(start)
	if err != nil {
		c.done(DecisionFailed, "removing redirection", err)
		return nil
	}
	c.done(DecisionRemoved, "", nil)
	return nil
}

// CmdCheck verifies that a selected pod has all its rules.
func CmdCheck(args *skel.CmdArgs) error {
	conf, l, err := setup(args)
	if err != nil {
		return err
	}
	defer l.close()
	c := l.call("CHECK", args.ContainerID, args.Netns)
	if err := missingPrevResult(conf, "CHECK needs the result of the chain"); err != nil {
		c.done(DecisionFailed, "", err)
		return err
	}
	t := targetOf(args, conf)
	if t.ref.Name != "" {
		c.forPod(t.ref.Namespace, t.ref.Name, t.ref.UID)
	}
	if t.skip != "" {
		c.done(DecisionSkipped, t.skip, nil)
		return nil
	}
	start := time.Now()
	spec, skip, err := lookup(conf, t, c)
	c.timeLookup(start)
	if err != nil {
		c.done(DecisionFailed, "", err)
		return err
	}
	if spec == nil {
		c.done(DecisionSkipped, skip, nil)
		return nil
	}
	start = time.Now()
	a, err := newApplier(conf, l)
	if err != nil {
		c.timeRules(start)
		err = cniErr(CodeApplyFailed, "%v", err)
		c.done(DecisionFailed, "", err)
		return err
	}
	err = a.Check(args.Netns, *spec, hasIPv6(conf.PrevResult))
	c.timeRules(start)
	if err != nil {
		var me *apply.MissingError
		if errors.As(err, &me) {
			err = cniErr(CodeRedirectionMissing, "pod %s/%s: %v", t.ref.Namespace, t.ref.Name, err)
		} else {
			err = cniErr(types.ErrInternal, "pod %s/%s: %v", t.ref.Namespace, t.ref.Name, err)
		}
		c.done(DecisionFailed, "", err)
		return err
	}
	c.done(DecisionVerified, "", nil)
	return nil
}

// CmdStatus reports whether the plugin could serve an ADD: its kubeconfig is readable and iptables is there.
func CmdStatus(args *skel.CmdArgs) error {
	conf, l, err := setup(args)
	if err != nil {
		return err
	}
	defer l.close()
	if conf.Kubeconfig == "" {
		return cniErr(types.ErrPluginNotAvailable, "no kubeconfig configured")
	}
	if _, err := kube.LoadEndpoint(conf.Kubeconfig); err != nil {
		return cniErr(types.ErrPluginNotAvailable, "%v", err)
	}
	if _, err := apply.DetectBackend(conf.IptablesBackend); err != nil {
		return cniErr(types.ErrPluginNotAvailable, "%v", err)
	}
	return nil
}
