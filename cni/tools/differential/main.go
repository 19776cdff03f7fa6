// Command differential is the plugin's half of the webhook/plugin differential tests
// (test/unit/webhook-core/differential.test.ts). It reads JSON lines on stdin and answers one JSON line each, with
// the plugin's own code on the real path:
//
//	{"annotations": {...}}                          -> {"ok": true} or {"ok": false, "error": "..."}  (rules.FromPod)
//	{"pod": {...}, "namespace": "ns", "exclude": []} -> {"reason": "..."}                            (selection.Decide)
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"

	"github.com/asm-cni/asm-cni/cni/internal/pod"
	"github.com/asm-cni/asm-cni/cni/internal/rules"
	"github.com/asm-cni/asm-cni/cni/internal/selection"
)

type request struct {
	Annotations map[string]string `json:"annotations"`
	Pod         json.RawMessage   `json:"pod"`
	Namespace   string            `json:"namespace"`
	Exclude     []string          `json:"exclude"`
}

type response struct {
	OK     bool   `json:"ok"`
	Error  string `json:"error,omitempty"`
	Reason string `json:"reason,omitempty"`
}

func answer(req request) response {
	if req.Pod != nil {
		// As the runtime decodes the pod it GETs from the API server.
		p, err := pod.Decode(req.Pod)
		if err != nil {
			return response{Error: err.Error()}
		}
		d := selection.Decide(p, req.Namespace, req.Exclude)
		return response{OK: true, Reason: d.Reason}
	}
	p := &pod.Pod{
		Metadata: pod.ObjectMeta{Annotations: req.Annotations},
		Spec:     pod.Spec{Containers: []pod.Container{{Name: "app"}, {Name: pod.ProxyContainerName}}},
	}
	if _, err := rules.FromPod(p); err != nil {
		return response{Error: err.Error()}
	}
	return response{OK: true}
}

func main() {
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 0, 64*1024), 1<<20) // one line is one small pod
	out := bufio.NewWriter(os.Stdout)
	enc := json.NewEncoder(out)
	for in.Scan() {
		var req request
		if err := json.Unmarshal(in.Bytes(), &req); err != nil {
			fmt.Fprintf(os.Stderr, "differential: bad input line: %v\n", err)
			os.Exit(2)
		}
		if err := enc.Encode(answer(req)); err != nil {
			fmt.Fprintf(os.Stderr, "differential: %v\n", err)
			os.Exit(2)
		}
	}
	if err := in.Err(); err != nil {
		fmt.Fprintf(os.Stderr, "differential: reading stdin: %v\n", err)
		os.Exit(2)
	}
	if err := out.Flush(); err != nil {
		os.Exit(2)
	}
}
