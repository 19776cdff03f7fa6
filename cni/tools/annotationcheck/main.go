// Command annotationcheck is the plugin's half of the webhook/plugin differential test
// (test/unit/webhook-core/differential.test.ts): it reads JSON lines {"annotations": {...}} on stdin and writes, per
// line, {"ok": true} when the plugin would read those pod annotations, else {"ok": false, "error": "..."}. It runs
// the plugin's own rules.FromPod on a pod that carries the annotations, so the test checks the real parse path.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"

	"github.com/asm-cni/asm-cni/cni/internal/pod"
	"github.com/asm-cni/asm-cni/cni/internal/rules"
)

type request struct {
	Annotations map[string]string `json:"annotations"`
}

type response struct {
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
}

func main() {
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 0, 64*1024), 1<<20) // one line is one small pod's annotations
	out := bufio.NewWriter(os.Stdout)
	enc := json.NewEncoder(out)
	for in.Scan() {
		var req request
		if err := json.Unmarshal(in.Bytes(), &req); err != nil {
			fmt.Fprintf(os.Stderr, "annotationcheck: bad input line: %v\n", err)
			os.Exit(2)
		}
		p := &pod.Pod{
			Metadata: pod.ObjectMeta{Annotations: req.Annotations},
			Spec:     pod.Spec{Containers: []pod.Container{{Name: "app"}, {Name: pod.ProxyContainerName}}},
		}
		res := response{OK: true}
		if _, err := rules.FromPod(p); err != nil {
			res = response{OK: false, Error: err.Error()}
		}
		if err := enc.Encode(res); err != nil {
			fmt.Fprintf(os.Stderr, "annotationcheck: %v\n", err)
			os.Exit(2)
		}
	}
	if err := in.Err(); err != nil {
		fmt.Fprintf(os.Stderr, "annotationcheck: reading stdin: %v\n", err)
		os.Exit(2)
	}
	if err := out.Flush(); err != nil {
		os.Exit(2)
	}
}
