package rules

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/asm-cni/asm-cni/cni/internal/rules/rulestest"
	"github.com/asm-cni/asm-cni/cni/internal/testenv"
)

// TestSharedAnnotationVectors checks the plugin accepts and refuses exactly the values the webhook does
// (test/vectors/annotations.json): a pod must never reach a node with a value the plugin would refuse.
func TestSharedAnnotationVectors(t *testing.T) {
	path := filepath.Join(rulestest.ModuleRoot(t), "..", "test", "vectors", "annotations.json")
	data, err := os.ReadFile(path)
	testenv.Require(t, err == nil, "shared annotation vectors not readable at "+path)
	var vf struct {
		Cases []struct {
			Annotation string `json:"annotation"`
			Value      string `json:"value"`
			Valid      bool   `json:"valid"`
		} `json:"cases"`
	}
	if err := json.Unmarshal(data, &vf); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if len(vf.Cases) == 0 {
		t.Fatalf("%s has no cases", path)
	}
	covered := map[string]bool{}
	for _, c := range vf.Cases {
		covered[c.Annotation] = true
		_, err := FromPod(podWith(map[string]string{c.Annotation: c.Value}))
		var ae *AnnotationError
		switch {
		case c.Valid && err != nil:
			t.Errorf("%s=%q: vector says valid, plugin refuses: %v", c.Annotation, c.Value, err)
		case !c.Valid && err == nil:
			t.Errorf("%s=%q: vector says invalid, plugin accepts", c.Annotation, c.Value)
		case err != nil && (!errors.As(err, &ae) || ae.Annotation != c.Annotation || ae.Value != c.Value):
			t.Errorf("%s=%q: error does not name the annotation and value: %v", c.Annotation, c.Value, err)
		}
	}
	for _, a := range Annotations {
		if !covered[a] {
			t.Errorf("no vector for annotation %s", a)
		}
	}
}
