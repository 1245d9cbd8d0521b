// Package tmpfs mounts small tmpfs filesystems for tests that need a disk that
// fills up: a store's file on one meets a real "no space left on device", which no
// fake reproduces faithfully (SQLite's WAL, its shared memory, its journal).
//
// Mounting needs root (CAP_SYS_ADMIN) on Linux. Without it the tests that need a
// tmpfs skip, loudly; under CI (CI set, and not "false") they fail instead, since
// CI runs them as root.
package tmpfs

import (
	"os"
	"strconv"
	"testing"
)

// Mount mounts a tmpfs of size bytes on a new directory and returns the
// directory; it is unmounted when t ends, after the cleanups registered later
// (the stores opened on it). When mounting is not permitted, t skips (fails
// under CI).
func Mount(t testing.TB, size int) string {
	t.Helper()
	dir := t.TempDir() // removed after the unmount: cleanups run last first
	if err := mount(dir, size); err != nil {
		if inCI() {
			t.Fatalf("tmpfs: mounting a tmpfs is required in CI: %v", err)
		}
		t.Skipf("!!! TMPFS TESTS SKIPPED: cannot mount a tmpfs (%v); run the tests as root to enable them", err)
	}
	t.Cleanup(func() {
		if err := unmount(dir); err != nil {
			t.Errorf("tmpfs: unmount %s: %v", dir, err)
		}
	})
	return dir
}

// Fill writes a file named name in dir until the filesystem is full, and returns
// its path: removing it frees the space.
func Fill(t testing.TB, dir, name string) string {
	t.Helper()
	path := dir + "/" + name
	f, err := os.Create(path)
	if err != nil {
		t.Fatalf("tmpfs: fill %s: %v", dir, err)
	}
	defer f.Close()
	block := make([]byte, 4096)
	for {
		if _, err := f.Write(block); err != nil {
			return path // no space left
		}
	}
}

// inCI reports whether the tests run in CI, where mounting must work.
func inCI() bool {
	ci := os.Getenv("CI")
	on, err := strconv.ParseBool(ci)
	return ci != "" && (err != nil || on)
}
