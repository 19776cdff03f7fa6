package config

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// maxConfFile bounds what is read of a CNI config file: real ones are a few KiB.
const maxConfFile = 1 << 20

// Installed finds the asm-cni entry the runtime would use on this node: in the first config file of dir (the
// runtime takes the lexically first .conflist/.conf/.json) or, failing that, in any file that has one; the
// entry gets the list's cniVersion and name, as the runtime hands them to the plugin. It returns the parsed
// config and the file it came from.
func Installed(dir string) (*Config, string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, "", fmt.Errorf("reading the CNI config dir: %w", err)
	}
	var names []string
	for _, e := range entries {
		switch filepath.Ext(e.Name()) {
		case ".conflist", ".conf", ".json":
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	for _, n := range names {
		path := filepath.Join(dir, n)
		entry, ok, err := asmEntry(path)
		if err != nil || !ok {
			continue
		}
		c, err := Parse(entry)
		if err != nil {
			return nil, path, fmt.Errorf("the asm-cni entry in %s: %w", path, err)
		}
		return c, path, nil
	}
	return nil, "", fmt.Errorf("no CNI config in %s has an asm-cni entry (is the installer running on this node?)", dir)
}

// asmEntry returns the asm-cni plugin object of a .conflist (or a .conf whose type is asm-cni), with cniVersion
// and name filled in from the list.
func asmEntry(path string) ([]byte, bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, false, err
	}
	defer f.Close()
	buf, err := io.ReadAll(io.LimitReader(f, maxConfFile+1))
	if err != nil {
		return nil, false, err
	}
	n := len(buf)
	if n > maxConfFile {
		return nil, false, fmt.Errorf("%s is larger than %d bytes", path, maxConfFile)
	}
	var list struct {
		CNIVersion string            `json:"cniVersion"`
		Name       string            `json:"name"`
		Type       string            `json:"type"`
		Plugins    []json.RawMessage `json:"plugins"`
	}
	if err := json.Unmarshal(buf[:n], &list); err != nil {
		return nil, false, err
	}
	if list.Type == "asm-cni" {
		return buf[:n], true, nil
	}
	for _, p := range list.Plugins {
		var m map[string]any
		if json.Unmarshal(p, &m) != nil || !strings.EqualFold(fmt.Sprint(m["type"]), "asm-cni") {
			continue
		}
		if _, ok := m["cniVersion"]; !ok {
			m["cniVersion"] = list.CNIVersion
		}
		if _, ok := m["name"]; !ok {
			m["name"] = list.Name
		}
		b, err := json.Marshal(m)
		return b, err == nil, err
	}
	return nil, false, nil
}
