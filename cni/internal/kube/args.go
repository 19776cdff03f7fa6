package kube

import "strings"

// PodRef names the pod a CNI call is for, from CNI_ARGS.
type PodRef struct {
	Namespace string
	Name      string
	UID       string // K8S_POD_UID, when the runtime passes it (for logs only)
}

// PodFromArgs reads K8S_POD_NAMESPACE, K8S_POD_NAME and K8S_POD_UID from CNI_ARGS ("K1=V1;K2=V2"). ok is false when CNI_ARGS
// names no Kubernetes pod (a runtime other than the kubelet's, or a non-pod sandbox).
func PodFromArgs(cniArgs string) (ref PodRef, ok bool) {
	for _, kv := range strings.Split(cniArgs, ";") {
		k, v, found := strings.Cut(strings.TrimSpace(kv), "=")
		if !found {
			continue
		}
		switch k {
		case "K8S_POD_NAMESPACE":
			ref.Namespace = v
		case "K8S_POD_NAME":
			ref.Name = v
		case "K8S_POD_UID":
			ref.UID = v
		}
	}
	return ref, ref.Namespace != "" && ref.Name != ""
}
