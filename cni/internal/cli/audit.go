package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/asm-cni/asm-cni/cni/internal/audit"
	"github.com/asm-cni/asm-cni/cni/internal/cri"
	"github.com/asm-cni/asm-cni/cni/internal/kube"
	"github.com/asm-cni/asm-cni/cni/internal/verify"
)

type auditOpts struct {
	confDir, kubeconfig, crictl, criEndpoint, listen string
	eventsKubeconfig                                 string
	interval                                         time.Duration
	events                                           bool
}

// auditCmd runs the node audit until SIGTERM: verify --node on an interval and after each CNI config change,
// metrics on --listen, Warning Events with the pod's in-cluster ServiceAccount.
func auditCmd(args []string, stdout, stderr io.Writer) int {
	var o auditOpts
	fs := flag.NewFlagSet("audit", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&o.confDir, "cni-conf-dir", "/etc/cni/net.d", "where the installer put the plugin's config")
	fs.StringVar(&o.kubeconfig, "kubeconfig", "", "kubeconfig to read pods with (default: the plugin's)")
	fs.StringVar(&o.crictl, "crictl", "crictl", "crictl binary")
	fs.StringVar(&o.criEndpoint, "cri-endpoint", cri.DefaultEndpoint, "the container runtime's CRI socket")
	fs.StringVar(&o.listen, "listen", ":9091", "address of /metrics and /healthz")
	fs.DurationVar(&o.interval, "interval", time.Minute, "time between audits (a CNI config change also starts one)")
	fs.BoolVar(&o.events, "events", true, "create a Warning Event on each pod that drifts or has lost its redirection (needs the pod's ServiceAccount)")
	fs.StringVar(&o.eventsKubeconfig, "events-kubeconfig", "", "kubeconfig to create Events with (default: the pod's in-cluster ServiceAccount)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, usage)
			return ExitOK
		}
		fmt.Fprintf(stderr, "asm-cni audit: %v\n%s", err, usage)
		return ExitUsage
	}
	if fs.NArg() > 0 || o.interval <= 0 {
		fmt.Fprintf(stderr, "asm-cni audit: takes only flags, and --interval must be positive\n%s", usage)
		return ExitUsage
	}
	log := slog.New(slog.NewJSONHandler(stderr, nil)).With("component", "asm-cni-audit")
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := runAudit(ctx, o, log); err != nil {
		log.Error(err.Error())
		return ExitError
	}
	return ExitOK
}

func runAudit(ctx context.Context, o auditOpts, log *slog.Logger) error {
	a := &audit.Auditor{Now: time.Now, Logf: func(f string, v ...any) { log.Warn(fmt.Sprintf(f, v...)) }}
	a.Check = func() ([]verify.PodReport, error) {
		// The plugin's config is read afresh each round: the installer may have rewritten it.
		on, err := onNode(o.confDir, o.kubeconfig, o.crictl, o.criEndpoint)
		if err != nil {
			return nil, err
		}
		return on.Pods("", "")
	}
	if o.events {
		ep, err := eventsEndpoint(o.eventsKubeconfig)
		if err != nil {
			return fmt.Errorf("--events needs the pod's ServiceAccount or --events-kubeconfig: %w (or pass --events=false)", err)
		}
		node, _ := os.Hostname()
		if n := os.Getenv("NODE_NAME"); n != "" {
			node = n
		}
		a.Events = kube.Events{Endpoint: ep, Component: "asm-cni-audit", Host: node, Now: time.Now}
	}
	trigger, err := audit.WatchDir(ctx, o.confDir)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return fmt.Errorf("--listen %s: %w", o.listen, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		_ = a.WriteMetrics(w)
	})
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	log.Info("audit started", "interval", o.interval.String(), "listen", ln.Addr().String(), "cniConfDir", o.confDir)
	t := time.NewTicker(o.interval)
	defer t.Stop()
	a.Loop(ctx, t.C, trigger, nil)
	return nil
}

func eventsEndpoint(kubeconfig string) (*kube.Endpoint, error) {
	if kubeconfig != "" {
		return kube.LoadEndpoint(kubeconfig)
	}
	return kube.InCluster()
}
