package plugin

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"
)

// logger writes JSON lines (log/slog) to the log file (log_file) and to stderr; stdout is reserved for the CNI
// result. The keys match the webhook's and the installer's lines (time in ISO 8601 UTC, level as a lowercase
// label, msg, component), so one log pipeline reads all three parts.
type logger struct {
	*slog.Logger
	file *os.File
}

// Component is the value of the "component" key of every plugin line.
const Component = "asm-cni"

var levels = map[string]slog.Level{
	"debug": slog.LevelDebug, "info": slog.LevelInfo, "warn": slog.LevelWarn, "error": slog.LevelError,
}

func newLogger(level, file string, stderr io.Writer) *logger {
	lv, ok := levels[level]
	if !ok {
		lv = slog.LevelInfo
	}
	l := &logger{}
	out := stderr
	if file != "" {
		f, err := os.OpenFile(file, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o640)
		if err != nil {
			fmt.Fprintf(stderr, "asm-cni: cannot open log_file %s: %v (logging to stderr only)\n", file, err)
		} else {
			l.file = f
			out = io.MultiWriter(stderr, f)
		}
	}
	h := slog.NewJSONHandler(out, &slog.HandlerOptions{Level: lv, ReplaceAttr: replaceAttr})
	l.Logger = slog.New(h).With("component", Component)
	return l
}

// replaceAttr writes time in UTC and the level as "debug", "info", "warn" or "error".
func replaceAttr(groups []string, a slog.Attr) slog.Attr {
	if len(groups) > 0 {
		return a
	}
	switch a.Key {
	case slog.TimeKey:
		return slog.String(slog.TimeKey, a.Value.Time().UTC().Format(time.RFC3339Nano))
	case slog.LevelKey:
		return slog.String(slog.LevelKey, strings.ToLower(a.Value.Any().(slog.Level).String()))
	}
	return a
}

func (l *logger) close() {
	if l.file != nil {
		_ = l.file.Close()
	}
}

// Debugf logs a free-form detail line at debug (what the rule programming does step by step).
func (l *logger) Debugf(format string, a ...any) { l.Debug(fmt.Sprintf(format, a...)) }

// Decision values of the one line each command logs.
const (
	DecisionRedirected = "redirected" // ADD: the pod's rules are programmed
	DecisionVerified   = "verified"   // CHECK: the pod's rules are all there
	DecisionRemoved    = "removed"    // DEL: whatever asm-cni programmed is gone
	DecisionSkipped    = "skipped"    // nothing to do for this pod; "reason" says why
	DecisionFailed     = "failed"     // the command failed; "error" says why
)

// call collects what one CNI command did, for the single line it logs when it returns.
type call struct {
	l         *logger
	cmd       string
	container string
	netns     string
	pod       string // namespace/name, empty when CNI_ARGS names no pod
	uid       string
	lookup    time.Duration
	rules     time.Duration
	looked    bool
	programed bool
	resumed   *bool // the lookup's TLS connection resumed the stored session; nil: no session file in use
}

func (l *logger) call(cmd string, containerID, netns string) *call {
	return &call{l: l, cmd: cmd, container: containerID, netns: netns}
}

// forPod names the pod the call is about (from CNI_ARGS).
func (c *call) forPod(namespace, name, uid string) {
	c.pod, c.uid = namespace+"/"+name, uid
}

// timeLookup and timeRules record how long the pod lookup (API call, decision, rendering) and the rule programming
// took.
func (c *call) timeLookup(start time.Time) { c.lookup, c.looked = time.Since(start), true }
func (c *call) timeRules(start time.Time)  { c.rules, c.programed = time.Since(start), true }

// tlsSession records whether the lookup resumed the TLS session of an earlier call (kube/session.go).
func (c *call) tlsSession(resumed bool) { c.resumed = &resumed }

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// done logs the call's line: info for a decision, error (warn for DEL, which never fails the runtime) with the
// error otherwise. reason says why a pod was skipped, or details a success.
func (c *call) done(decision, reason string, err error) {
	attrs := []slog.Attr{slog.String("cmd", c.cmd), slog.String("container", c.container)}
	if c.pod != "" {
		attrs = append(attrs, slog.String("pod", c.pod))
	}
	if c.uid != "" {
		attrs = append(attrs, slog.String("pod_uid", c.uid))
	}
	if c.netns != "" {
		attrs = append(attrs, slog.String("netns", c.netns))
	}
	attrs = append(attrs, slog.String("decision", decision))
	if reason != "" {
		attrs = append(attrs, slog.String("reason", reason))
	}
	if c.looked {
		attrs = append(attrs, slog.Float64("lookup_ms", ms(c.lookup)))
	}
	if c.resumed != nil {
		attrs = append(attrs, slog.Bool("tls_resumed", *c.resumed))
	}
	if c.programed {
		attrs = append(attrs, slog.Float64("rules_ms", ms(c.rules)))
	}
	level := slog.LevelInfo
	if err != nil {
		attrs = append(attrs, slog.String("error", err.Error()))
		level = slog.LevelError
		if c.cmd == "DEL" {
			level = slog.LevelWarn
		}
	}
	c.l.LogAttrs(context.Background(), level, c.cmd+" "+decision, attrs...)
}
