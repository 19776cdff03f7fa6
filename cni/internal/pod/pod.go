// Package pod is the minimal Kubernetes Pod model the plugin reads. It decodes only the fields the plugin's
// selection and rule rendering need, with encoding/json (YAML is converted to JSON first), so the binary does
// not carry client-go or k8s.io/api.
package pod

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"sigs.k8s.io/yaml"
)

// ProxyContainerName is the sidecar container Istio injects.
const ProxyContainerName = "istio-proxy"

// Pod is the subset of core/v1 Pod the plugin reads.
type Pod struct {
	APIVersion string     `json:"apiVersion,omitempty"`
	Kind       string     `json:"kind,omitempty"`
	Metadata   ObjectMeta `json:"metadata"`
	Spec       Spec       `json:"spec"`
}

// ObjectMeta is the subset of metav1.ObjectMeta the plugin reads.
type ObjectMeta struct {
	Name         string            `json:"name,omitempty"`
	Namespace    string            `json:"namespace,omitempty"`
	GenerateName string            `json:"generateName,omitempty"`
	UID          string            `json:"uid,omitempty"`
	Labels       map[string]string `json:"labels,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
}

// Spec is the subset of core/v1 PodSpec the plugin reads.
type Spec struct {
	HostNetwork    bool        `json:"hostNetwork,omitempty"`
	InitContainers []Container `json:"initContainers,omitempty"`
	Containers     []Container `json:"containers,omitempty"`
}

// Container is the subset of core/v1 Container the plugin reads.
type Container struct {
	Name            string           `json:"name"`
	Args            []string         `json:"args,omitempty"`
	Env             []EnvVar         `json:"env,omitempty"`
	RestartPolicy   string           `json:"restartPolicy,omitempty"`
	SecurityContext *SecurityContext `json:"securityContext,omitempty"`
}

// EnvVar is a literal environment variable; valueFrom is not resolved (the plugin cannot read secrets or
// the downward API, and Istio's plugin reads literal values only).
type EnvVar struct {
	Name  string `json:"name"`
	Value string `json:"value,omitempty"`
}

// SecurityContext is the subset of core/v1 SecurityContext the plugin reads.
type SecurityContext struct {
	RunAsUser    *int64        `json:"runAsUser,omitempty"`
	RunAsGroup   *int64        `json:"runAsGroup,omitempty"`
	Capabilities *Capabilities `json:"capabilities,omitempty"`
}

// Capabilities lists added and dropped Linux capabilities.
type Capabilities struct {
	Add  []string `json:"add,omitempty"`
	Drop []string `json:"drop,omitempty"`
}

// RestartPolicyAlways marks an init container as a native sidecar.
const RestartPolicyAlways = "Always"

// IsNativeSidecar reports whether an init container keeps running beside the app (restartPolicy: Always).
func (c *Container) IsNativeSidecar() bool { return c.RestartPolicy == RestartPolicyAlways }

// EnvValue returns the literal value of the named variable and whether it is set. The last definition
// wins, as in the kubelet.
func (c *Container) EnvValue(name string) (string, bool) {
	for i := len(c.Env) - 1; i >= 0; i-- {
		if c.Env[i].Name == name {
			return c.Env[i].Value, true
		}
	}
	return "", false
}

// ProxyContainer returns the istio-proxy sidecar: a container named istio-proxy, or a native sidecar
// (an init container with restartPolicy Always) of that name. Nil when the pod has none.
func (p *Pod) ProxyContainer() *Container {
	for i := range p.Spec.Containers {
		if p.Spec.Containers[i].Name == ProxyContainerName {
			return &p.Spec.Containers[i]
		}
	}
	for i := range p.Spec.InitContainers {
		c := &p.Spec.InitContainers[i]
		if c.Name == ProxyContainerName && c.IsNativeSidecar() {
			return c
		}
	}
	return nil
}

// InitContainer returns the init container with the given name, or nil.
func (p *Pod) InitContainer(name string) *Container {
	for i := range p.Spec.InitContainers {
		if p.Spec.InitContainers[i].Name == name {
			return &p.Spec.InitContainers[i]
		}
	}
	return nil
}

// DisplayName names the pod for messages: namespace/name, or the generateName prefix before creation.
func (p *Pod) DisplayName() string {
	name := p.Metadata.Name
	if name == "" && p.Metadata.GenerateName != "" {
		name = p.Metadata.GenerateName + "<generated>"
	}
	if name == "" {
		name = "<unnamed>"
	}
	if p.Metadata.Namespace != "" {
		return p.Metadata.Namespace + "/" + name
	}
	return name
}

// ErrEmpty is returned for input with no document in it.
var ErrEmpty = errors.New("decode pod: empty input")

// Decode reads a Pod from JSON or YAML. A document whose kind is set to something other than Pod is refused
// (use DecodeWorkload to accept a workload's pod template).
func Decode(data []byte) (*Pod, error) {
	raw, err := toJSON(data)
	if err != nil {
		return nil, err
	}
	var p Pod
	if err := unmarshal(raw, &p); err != nil {
		return nil, err
	}
	if p.Kind != "" && p.Kind != "Pod" {
		return nil, fmt.Errorf("decode pod: kind is %q, expected Pod", p.Kind)
	}
	return &p, nil
}

// workload is a controller object (Deployment, StatefulSet, DaemonSet, ReplicaSet, Job) or a CronJob,
// reduced to its pod template.
type workload struct {
	Kind     string     `json:"kind"`
	Metadata ObjectMeta `json:"metadata"`
	Spec     struct {
		Template    *template `json:"template"`
		JobTemplate *struct {
			Spec struct {
				Template *template `json:"template"`
			} `json:"spec"`
		} `json:"jobTemplate"`
	} `json:"spec"`
}

type template struct {
	Metadata ObjectMeta `json:"metadata"`
	Spec     Spec       `json:"spec"`
}

// DecodeWorkload reads a Pod, or the pod template of a workload object (anything with spec.template, or a
// CronJob's spec.jobTemplate.spec.template). The template's namespace defaults to the workload's.
// This is what `asm-cni render` accepts, so an admin can check a Deployment without creating it.
func DecodeWorkload(data []byte) (*Pod, error) {
	raw, err := toJSON(data)
	if err != nil {
		return nil, err
	}
	var w workload
	if err := unmarshal(raw, &w); err != nil {
		return nil, err
	}
	if w.Kind == "" || w.Kind == "Pod" {
		var p Pod
		if err := unmarshal(raw, &p); err != nil {
			return nil, err
		}
		return &p, nil
	}
	t := w.Spec.Template
	if t == nil && w.Spec.JobTemplate != nil {
		t = w.Spec.JobTemplate.Spec.Template
	}
	if t == nil {
		return nil, fmt.Errorf("decode pod: kind %s has no pod template (spec.template)", w.Kind)
	}
	p := &Pod{APIVersion: "v1", Kind: "Pod", Metadata: t.Metadata, Spec: t.Spec}
	if p.Metadata.Namespace == "" {
		p.Metadata.Namespace = w.Metadata.Namespace
	}
	if p.Metadata.Name == "" && p.Metadata.GenerateName == "" && w.Metadata.Name != "" {
		p.Metadata.GenerateName = w.Metadata.Name + "-"
	}
	return p, nil
}

// toJSON returns JSON input as is and converts YAML to JSON.
func toJSON(data []byte) ([]byte, error) {
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 {
		return nil, ErrEmpty
	}
	if trimmed[0] == '{' && json.Valid(trimmed) {
		return trimmed, nil
	}
	out, err := yaml.YAMLToJSON(trimmed)
	if err != nil {
		if trimmed[0] == '{' {
			// Neither JSON nor a YAML flow mapping: report it as the JSON it most likely meant to be.
			var v any
			return nil, unmarshal(trimmed, &v)
		}
		return nil, fmt.Errorf("decode pod: invalid YAML: %w", err)
	}
	out = bytes.TrimSpace(out)
	if len(out) == 0 || bytes.Equal(out, []byte("null")) {
		return nil, ErrEmpty
	}
	if out[0] != '{' {
		return nil, fmt.Errorf("decode pod: expected an object, got %s", describeJSON(out))
	}
	return out, nil
}

func unmarshal(raw []byte, v any) error {
	if err := json.Unmarshal(raw, v); err != nil {
		var typeErr *json.UnmarshalTypeError
		var syntaxErr *json.SyntaxError
		switch {
		case errors.As(err, &typeErr):
			field := typeErr.Field
			if field == "" {
				field = "(document)"
			}
			return fmt.Errorf("decode pod: field %s: cannot use a JSON %s as %s", field, typeErr.Value, typeErr.Type)
		case errors.As(err, &syntaxErr):
			return fmt.Errorf("decode pod: invalid JSON at byte %d: %v", syntaxErr.Offset, err)
		default:
			return fmt.Errorf("decode pod: %w", err)
		}
	}
	return nil
}

func describeJSON(b []byte) string {
	switch b[0] {
	case '[':
		return "a list"
	case '"':
		return "a string"
	default:
		return "a scalar"
	}
}
