package main

import (
	"bufio"
	"bytes"
	"io/fs"
	"path"
	"strconv"
	"strings"
)

// Go's collector lets the heap grow to twice what is live, and knows nothing of a
// container's memory limit: a million links under load hold some 700 MB live and reach
// 1.5 GB of anonymous memory, and a container limited below that is killed although
// half of it was garbage. Under a cgroup memory limit, and unless GOMEMLIMIT is set,
// serve sets Go's soft memory limit a fifth below it, so the collector works harder
// before the kernel kills. What stays outside the limit: Badger's memory-mapped files
// (the kernel reclaims those pages under pressure), thread stacks, and plugin processes.
const memLimitShare = 0.8

// unlimited is the least value cgroup v1 reports for "no limit" (the largest page-aligned
// int64); anything from it on is none.
const unlimited = 1 << 62

// softMemoryLimit is the soft memory limit to set for a cgroup limit of limit bytes (0:
// none), or 0 to leave Go's own: GOMEMLIMIT, set to anything (including "off"), stands.
func softMemoryLimit(env string, limit int64) int64 {
	if env != "" || limit <= 0 {
		return 0
	}
	return int64(float64(limit) * memLimitShare)
}

// cgroupMemoryLimit returns the memory limit of the cgroup this process runs in, in
// bytes, or 0 when it has none or it cannot be read. fsys is the root file system.
//
// It reads the files of both cgroup versions, at the root of their usual mounts (what
// a process in a container with its own cgroup namespace sees as its own) and under the
// path /proc/self/cgroup names (a process seeing the host's hierarchy, as a systemd
// service does), and takes the least limit found.
func cgroupMemoryLimit(fsys fs.FS) int64 {
	v2, v1 := "/", "/"
	if data, err := fs.ReadFile(fsys, "proc/self/cgroup"); err == nil {
		if p2, p1 := parseCgroupPaths(data); p2 != "" || p1 != "" {
			v2, v1 = p2, p1
		}
	}
	var files []string
	for _, p := range []string{"/", v2} {
		if p != "" {
			files = append(files, path.Join("sys/fs/cgroup", p, "memory.max"))
		}
	}
	for _, p := range []string{"/", v1} {
		if p != "" {
			files = append(files, path.Join("sys/fs/cgroup/memory", p, "memory.limit_in_bytes"))
		}
	}
	var least int64
	for _, f := range files {
		data, err := fs.ReadFile(fsys, f)
		if err != nil {
			continue
		}
		if n, ok := parseMemoryLimit(data); ok && (least == 0 || n < least) {
			least = n
		}
	}
	return least
}

// parseCgroupPaths reads /proc/self/cgroup: the cgroup v2 path (the "0::" line) and the
// cgroup v1 path of the memory controller. A path missing, or not absolute, is "".
func parseCgroupPaths(data []byte) (v2, v1 string) {
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		// hierarchy-ID:controller-list:cgroup-path; the path may hold colons.
		id, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		controllers, p, ok := strings.Cut(rest, ":")
		if !ok || !strings.HasPrefix(p, "/") || strings.Contains(p, "\x00") {
			continue
		}
		p = path.Clean(p)
		switch {
		case id == "0" && controllers == "":
			v2 = p
		case id != "0" && hasController(controllers, "memory"):
			v1 = p
		}
	}
	return v2, v1
}

func hasController(list, name string) bool {
	for c := range strings.SplitSeq(list, ",") {
		if c == name {
			return true
		}
	}
	return false
}

// parseMemoryLimit reads memory.max (cgroup v2: bytes, or "max") or
// memory.limit_in_bytes (v1: bytes, a huge number for none). It reports false for no
// limit and for anything else.
func parseMemoryLimit(data []byte) (int64, bool) {
	s := strings.TrimSpace(string(data))
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 || n >= unlimited {
		return 0, false
	}
	return n, true
}
