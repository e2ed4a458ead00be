// Package fsutil holds file-system helpers shared by the packages that write
// credentials and certificates: a file is replaced atomically, so a process re-reading
// it on change (a rotation) sees the old content or the new, never half of either.
package fsutil
