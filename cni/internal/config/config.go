// Package config parses the plugin's network configuration: the conflist entry the installer writes, as the
// runtime hands it to the plugin on stdin (standard CNI keys plus asm-cni's snake_case keys).
package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"
)

// Defaults for keys the conflist entry may leave out.
const (
	DefaultAPITimeout = 5 * time.Second
	DefaultLogLevel   = "info"
	// MaxAPITimeout bounds api_timeout: the runtime itself gives up on a CNI call after a few minutes.
	MaxAPITimeout = 2 * time.Minute
)

// DefaultExcludeNamespaces is used when exclude_namespaces is absent (the same default as the webhook's).
var DefaultExcludeNamespaces = []string{"kube-system", "istio-system"}

// Backend names for iptables_backend.
const (
	BackendAuto   = "auto"
	BackendNFT    = "nft"
	BackendLegacy = "legacy"
)

// Config is the parsed network configuration.
type Config struct {
	types.PluginConf

	Kubeconfig        string
	ExcludeNamespaces []string
	LogLevel          string
	LogFile           string
	APITimeout        time.Duration
	// IptablesBackend is "auto" (detect the node's), "nft" or "legacy".
	IptablesBackend string
	// Standalone: the plugin is a network of its own (a Multus NetworkAttachmentDefinition), not chained after the
	// cluster's network plugin, so ADD comes without a prevResult.
	Standalone bool
}

// raw mirrors the asm-cni keys undecoded, so each key's type error can name the key.
type raw struct {
	Kubeconfig        json.RawMessage `json:"kubeconfig"`
	ExcludeNamespaces json.RawMessage `json:"exclude_namespaces"`
	LogLevel          json.RawMessage `json:"log_level"`
	LogFile           json.RawMessage `json:"log_file"`
	APITimeout        json.RawMessage `json:"api_timeout"`
	IptablesBackend   json.RawMessage `json:"iptables_backend"`
	Standalone        json.RawMessage `json:"standalone"`
}

// Error is an invalid network configuration: CNI error code 7.
func Error(format string, a ...any) *types.Error {
	return types.NewError(types.ErrInvalidNetworkConfig, "asm-cni: invalid network config: "+fmt.Sprintf(format, a...), "")
}

// Parse decodes stdin into a Config, applying defaults and validating every asm-cni key. prevResult, when present,
// is parsed into PluginConf.PrevResult in the config's cniVersion. Every error is a *types.Error with code 7
// (or 6 when stdin is not JSON at all).
func Parse(stdin []byte) (*Config, error) {
	trimmed := bytes.TrimSpace(stdin)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return nil, types.NewError(types.ErrDecodingFailure, "asm-cni: network config on stdin is not a JSON object", "")
	}
	c := &Config{}
	if err := json.Unmarshal(trimmed, &c.PluginConf); err != nil {
		return nil, types.NewError(types.ErrDecodingFailure, "asm-cni: cannot decode network config: "+err.Error(), "")
	}
	var r raw
	if err := json.Unmarshal(trimmed, &r); err != nil {
		return nil, types.NewError(types.ErrDecodingFailure, "asm-cni: cannot decode network config: "+err.Error(), "")
	}
	if c.CNIVersion == "" {
		return nil, Error("cniVersion is required")
	}
	var err error
	if c.Kubeconfig, err = str(r.Kubeconfig, "kubeconfig", ""); err != nil {
		return nil, err
	}
	if c.LogFile, err = str(r.LogFile, "log_file", ""); err != nil {
		return nil, err
	}
	if c.LogLevel, err = str(r.LogLevel, "log_level", DefaultLogLevel); err != nil {
		return nil, err
	}
	c.LogLevel = strings.ToLower(c.LogLevel)
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return nil, Error("log_level %q is not one of debug, info, warn, error", c.LogLevel)
	}
	if c.IptablesBackend, err = str(r.IptablesBackend, "iptables_backend", BackendAuto); err != nil {
		return nil, err
	}
	switch c.IptablesBackend {
	case BackendAuto, BackendNFT, BackendLegacy:
	default:
		return nil, Error("iptables_backend %q is not one of auto, nft, legacy", c.IptablesBackend)
	}
	if c.APITimeout, err = duration(r.APITimeout); err != nil {
		return nil, err
	}
	if c.ExcludeNamespaces, err = namespaces(r.ExcludeNamespaces); err != nil {
		return nil, err
	}
	if c.Standalone, err = boolean(r.Standalone, "standalone"); err != nil {
		return nil, err
	}
	if err := version.ParsePrevResult(&c.PluginConf); err != nil {
		return nil, Error("prevResult: %v", err)
	}
	return c, nil
}

func present(m json.RawMessage) bool {
	return len(m) > 0 && string(m) != "null"
}

func str(m json.RawMessage, key, def string) (string, error) {
	if !present(m) {
		return def, nil
	}
	var s string
	if err := json.Unmarshal(m, &s); err != nil {
		return "", Error("%s must be a string, got %s", key, m)
	}
	if strings.TrimSpace(s) == "" {
		return def, nil
	}
	return s, nil
}

// boolean reads a JSON true/false; absent or null is false. A string such as "true" is refused rather than
// guessed at: the key decides whether a missing prevResult is an error.
func boolean(m json.RawMessage, key string) (bool, error) {
	if !present(m) {
		return false, nil
	}
	var b bool
	if err := json.Unmarshal(m, &b); err != nil {
		return false, Error("%s must be true or false, got %s", key, m)
	}
	return b, nil
}

func duration(m json.RawMessage) (time.Duration, error) {
	s, err := str(m, "api_timeout", "")
	if err != nil {
		return 0, err
	}
	if s == "" {
		return DefaultAPITimeout, nil
	}
	d, perr := time.ParseDuration(s)
	if perr != nil {
		return 0, Error("api_timeout %q is not a duration such as \"5s\" or \"1500ms\"", s)
	}
	if d <= 0 || d > MaxAPITimeout {
		return 0, Error("api_timeout %q must be greater than 0 and at most %s", s, MaxAPITimeout)
	}
	return d, nil
}

func namespaces(m json.RawMessage) ([]string, error) {
	if !present(m) {
		return append([]string(nil), DefaultExcludeNamespaces...), nil
	}
	var list []string
	if err := json.Unmarshal(m, &list); err != nil {
		return nil, Error("exclude_namespaces must be a list of namespace names, got %s", m)
	}
	for i, ns := range list {
		if !isDNSLabel(ns) {
			return nil, Error("exclude_namespaces[%d] %q is not a namespace name", i, ns)
		}
	}
	return list, nil
}

// isDNSLabel is the RFC 1123 label rule Kubernetes applies to namespace names.
func isDNSLabel(s string) bool {
	if len(s) == 0 || len(s) > 63 {
		return false
	}
	for i, r := range s {
		alnum := (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9')
		if !alnum && !(r == '-' && i > 0 && i < len(s)-1) {
			return false
		}
	}
	return true
}

// Excluded reports whether the namespace is in exclude_namespaces.
func (c *Config) Excluded(namespace string) bool {
	for _, ns := range c.ExcludeNamespaces {
		if ns == namespace {
			return true
		}
	}
	return false
}
