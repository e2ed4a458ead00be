package e2e

import (
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// File is one file of a projected volume (ConfigMap, Secret).
type File struct {
	Data []byte
	Mode fs.FileMode
}

// dataDirName is the symlink the kubelet's atomic writer points at the current
// timestamped directory of a projected volume; every user-visible entry is a symlink
// through it, so that an update (a new timestamped directory, then a rename of a new
// symlink over ..data) swaps every file at once.
const dataDirName = "..data"

// WriteAtomic writes files (relative paths) into dir the way the kubelet's
// AtomicWriter does for ConfigMap, Secret and projected volumes:
//
//	dir/..2006_01_02_15_04_05.NNNNNNNNN/<files>    the payload, read-only
//	dir/..data -> ..2006_01_02_15_04_05.NNNNNNNNN  swapped by rename(2)
//	dir/<top-level name> -> ..data/<top-level name>
//
// Called again on the same dir it publishes the new payload with one rename, then
// removes the user-visible links that no longer name a file and the old payload, as
// the kubelet does when a ConfigMap changes. gid, if >= 0, owns the payload (fsGroup)
// and can read every file.
func WriteAtomic(dir string, files map[string]File, gid int) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	old, _ := os.Readlink(filepath.Join(dir, dataDirName))
	ts := ".." + time.Now().Format("2006_01_02_15_04_05.000000000")
	payload := filepath.Join(dir, ts)
	if err := os.Mkdir(payload, 0o755); err != nil {
		return err
	}
	top := map[string]bool{}
	for _, rel := range sortedKeys(files) {
		clean := path.Clean(rel)
		if path.IsAbs(clean) || clean == "." || strings.HasPrefix(clean, "..") {
			return fmt.Errorf("e2e: volume file %q: must be a relative path not starting with ..", rel)
		}
		f := files[rel]
		mode := f.Mode
		if gid >= 0 {
			// The kubelet's SetVolumeOwnership gives fsGroup read access to every file of
			// a read-only volume (Secret, ConfigMap, projected): mode | 0440.
			mode |= 0o440
		}
		p := filepath.Join(payload, filepath.FromSlash(clean))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, f.Data, mode); err != nil {
			return err
		}
		if err := os.Chmod(p, mode); err != nil { // past the umask, as the kubelet sets it
			return err
		}
		if gid >= 0 {
			if err := os.Chown(p, -1, gid); err != nil {
				return err
			}
		}
		top[strings.SplitN(clean, "/", 2)[0]] = true
	}
	tmp := filepath.Join(dir, dataDirName+"_tmp")
	_ = os.Remove(tmp)
	if err := os.Symlink(ts, tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, dataDirName)); err != nil {
		return err
	}
	for name := range top {
		link := filepath.Join(dir, name)
		if _, err := os.Lstat(link); err == nil {
			continue
		}
		if err := os.Symlink(filepath.Join(dataDirName, name), link); err != nil {
			return err
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		n := e.Name()
		if strings.HasPrefix(n, "..") || top[n] || e.Type()&fs.ModeSymlink == 0 {
			continue
		}
		if t, _ := os.Readlink(filepath.Join(dir, n)); strings.HasPrefix(t, dataDirName+"/") {
			if err := os.Remove(filepath.Join(dir, n)); err != nil {
				return err
			}
		}
	}
	if old != "" && old != ts {
		return os.RemoveAll(filepath.Join(dir, old))
	}
	return nil
}

// projectedFiles is what a ConfigMap or Secret volume source projects: every key, or
// only the items listed (at their paths), with the items' or the default mode.
func projectedFiles(data map[string]string, items []corev1.KeyToPath, defaultMode *int32, what string, opt bool) (map[string]File, error) {
	mode := fs.FileMode(0o644)
	if defaultMode != nil {
		mode = fs.FileMode(*defaultMode)
	}
	out := map[string]File{}
	if len(items) == 0 {
		for k, v := range data {
			out[k] = File{Data: []byte(v), Mode: mode}
		}
		return out, nil
	}
	for _, it := range items {
		v, ok := data[it.Key]
		if !ok {
			if opt {
				continue
			}
			return nil, fmt.Errorf("%s has no key %q", what, it.Key)
		}
		m := mode
		if it.Mode != nil {
			m = fs.FileMode(*it.Mode)
		}
		out[it.Path] = File{Data: []byte(v), Mode: m}
	}
	return out, nil
}

// volumeFiles resolves the payload of a ConfigMap, Secret or projected volume; ok is
// false for other volume kinds.
func volumeFiles(v *corev1.Volume, f *Facts) (files map[string]File, ok bool, err error) {
	switch {
	case v.ConfigMap != nil:
		cm := f.ConfigMaps[v.ConfigMap.Name]
		if cm == nil {
			if optional(v.ConfigMap.Optional) {
				return map[string]File{}, true, nil
			}
			return nil, true, fmt.Errorf("volume %s: ConfigMap %q not found", v.Name, v.ConfigMap.Name)
		}
		files, err = projectedFiles(cm.Data, v.ConfigMap.Items, v.ConfigMap.DefaultMode, "ConfigMap "+cm.Name, optional(v.ConfigMap.Optional))
		return files, true, err
	case v.Secret != nil:
		s := f.Secrets[v.Secret.SecretName]
		if s == nil {
			if optional(v.Secret.Optional) {
				return map[string]File{}, true, nil
			}
			return nil, true, fmt.Errorf("volume %s: Secret %q not found", v.Name, v.Secret.SecretName)
		}
		files, err = projectedFiles(secretData(s), v.Secret.Items, v.Secret.DefaultMode, "Secret "+s.Name, optional(v.Secret.Optional))
		return files, true, err
	case v.Projected != nil:
		files = map[string]File{}
		for _, src := range v.Projected.Sources {
			var part map[string]File
			switch {
			case src.ConfigMap != nil:
				cm := f.ConfigMaps[src.ConfigMap.Name]
				if cm == nil {
					if optional(src.ConfigMap.Optional) {
						continue
					}
					return nil, true, fmt.Errorf("volume %s: ConfigMap %q not found", v.Name, src.ConfigMap.Name)
				}
				part, err = projectedFiles(cm.Data, src.ConfigMap.Items, v.Projected.DefaultMode, "ConfigMap "+cm.Name, optional(src.ConfigMap.Optional))
			case src.Secret != nil:
				s := f.Secrets[src.Secret.Name]
				if s == nil {
					if optional(src.Secret.Optional) {
						continue
					}
					return nil, true, fmt.Errorf("volume %s: Secret %q not found", v.Name, src.Secret.Name)
				}
				part, err = projectedFiles(secretData(s), src.Secret.Items, v.Projected.DefaultMode, "Secret "+s.Name, optional(src.Secret.Optional))
			default:
				return nil, true, fmt.Errorf("volume %s: only configMap and secret projections are supported", v.Name)
			}
			if err != nil {
				return nil, true, err
			}
			for k, fl := range part {
				files[k] = fl
			}
		}
		return files, true, nil
	}
	return nil, false, nil
}
