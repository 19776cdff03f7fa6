// Package atomicfile replaces small state files so that concurrent plugin processes only ever read a whole file.
package atomicfile

import (
	"errors"
	"os"
	"path/filepath"
)

// Write writes data with mode to a temporary file beside path and renames it over path (creating the directory with
// mode 0755 if needed). The last writer wins; a failed write leaves path as it was and no temporary file behind.
func Write(path string, data []byte, mode os.FileMode) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, werr := f.Write(data)
	werr = errors.Join(werr, f.Close())
	if werr == nil {
		werr = os.Chmod(tmp, mode)
	}
	if werr == nil {
		werr = os.Rename(tmp, path)
	}
	if werr != nil {
		_ = os.Remove(tmp)
	}
	return werr
}
