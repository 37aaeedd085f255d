package main

import (
	"strings"
	"testing"
	"testing/fstest"
)

func TestSoftMemoryLimit(t *testing.T) {
	for _, tc := range []struct {
		env   string
		limit int64
		want  int64
	}{
		{"", 1 << 30, 858993459}, // four fifths of 1 GiB
		{"", 0, 0},               // no cgroup limit: Go's default
		{"", -1, 0},
		{"512MiB", 1 << 30, 0}, // the operator's GOMEMLIMIT stands
		{"off", 1 << 30, 0},
	} {
		if got := softMemoryLimit(tc.env, tc.limit); got != tc.want {
			t.Errorf("softMemoryLimit(%q, %d) = %d, want %d", tc.env, tc.limit, got, tc.want)
		}
	}
}

func TestParseMemoryLimit(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64 // 0: no limit
	}{
		{"1073741824\n", 1 << 30},
		{"  536870912  ", 512 << 20},
		{"max\n", 0},
		{"9223372036854771712\n", 0}, // cgroup v1's "unlimited"
		{"9223372036854775807", 0},
		{"99999999999999999999", 0}, // past int64
		{"0", 0},
		{"-1", 0},
		{"", 0},
		{"1g", 0},
		{"0x40000000", 0},
		{"1073741824 1073741824", 0},
		{"\x00\xff", 0},
	} {
		n, ok := parseMemoryLimit([]byte(tc.in))
		if n != tc.want || ok != (tc.want > 0) {
			t.Errorf("parseMemoryLimit(%q) = %d, %v; want %d", tc.in, n, ok, tc.want)
		}
	}
}

func TestParseCgroupPaths(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		v2, v1   string
	}{
		{"v2 only", "0::/system.slice/clickgate.service\n", "/system.slice/clickgate.service", ""},
		{"v2 in a namespace", "0::/\n", "/", ""},
		{"hybrid", "9:name=systemd:/\n4:memory:/process_api/3a83\n1:cpu:/\n0::/\n", "/", "/process_api/3a83"},
		{"v1 memory with another controller", "5:cpuacct,memory:/docker/abc\n", "", "/docker/abc"},
		{"a controller named like memory", "5:memory_extra:/x\n", "", ""},
		{"a path with a colon", "0::/a:b\n", "/a:b", ""},
		{"dot-dots cleaned", "0::/a/../../etc\n", "/etc", ""},
		{"relative path", "0::a/b\n4:memory:x\n", "", ""},
		{"no colons", "garbage\n", "", ""},
		{"one colon", "0:\n", "", ""},
		{"a NUL in the path", "0::/a\x00b\n", "", ""},
		{"empty", "", "", ""},
		{"a line past the scanner's limit", "0::/" + strings.Repeat("a", 100_000) + "\n", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v2, v1 := parseCgroupPaths([]byte(tc.in))
			if v2 != tc.v2 || v1 != tc.v1 {
				t.Errorf("got v2 %q v1 %q, want %q and %q", v2, v1, tc.v2, tc.v1)
			}
		})
	}
}

func FuzzParseCgroupPaths(f *testing.F) {
	f.Add([]byte("9:name=systemd:/\n4:memory:/process_api/3a83\n0::/\n"))
	f.Add([]byte("0::/a:b\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		v2, v1 := parseCgroupPaths(data)
		for _, p := range []string{v2, v1} {
			if p != "" && (p[0] != '/' || len(p) > len(data)) {
				t.Fatalf("path %q from %q", p, data)
			}
		}
	})
}

func TestCgroupMemoryLimit(t *testing.T) {
	file := func(s string) *fstest.MapFile { return &fstest.MapFile{Data: []byte(s)} }
	for _, tc := range []struct {
		name string
		fs   fstest.MapFS
		want int64
	}{
		{"no cgroup files", fstest.MapFS{}, 0},
		{"v2 in a container's namespace", fstest.MapFS{
			"proc/self/cgroup":         file("0::/\n"),
			"sys/fs/cgroup/memory.max": file("536870912\n"),
		}, 512 << 20},
		{"v2 without a limit", fstest.MapFS{
			"proc/self/cgroup":         file("0::/\n"),
			"sys/fs/cgroup/memory.max": file("max\n"),
		}, 0},
		{"v2 seen from the host, a service's limit", fstest.MapFS{
			"proc/self/cgroup": file("0::/system.slice/clickgate.service\n"),
			"sys/fs/cgroup/system.slice/clickgate.service/memory.max": file("2147483648\n"),
		}, 2 << 30},
		{"v1 hybrid, unlimited (this kind of VM)", fstest.MapFS{
			"proc/self/cgroup":                                            file("4:memory:/process_api/3a83\n0::/\n"),
			"sys/fs/cgroup/memory/memory.limit_in_bytes":                  file("9223372036854771712\n"),
			"sys/fs/cgroup/memory/process_api/3a83/memory.limit_in_bytes": file("9223372036854771712\n"),
		}, 0},
		{"v1, the group's limit under an unlimited root", fstest.MapFS{
			"proc/self/cgroup":                                      file("4:memory:/docker/abc\n"),
			"sys/fs/cgroup/memory/memory.limit_in_bytes":            file("9223372036854771712\n"),
			"sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes": file("1073741824\n"),
		}, 1 << 30},
		{"the least of several", fstest.MapFS{
			"proc/self/cgroup":                             file("4:memory:/a\n0::/b\n"),
			"sys/fs/cgroup/memory.max":                     file("4294967296\n"),
			"sys/fs/cgroup/b/memory.max":                   file("3221225472\n"),
			"sys/fs/cgroup/memory/a/memory.limit_in_bytes": file("2147483648\n"),
		}, 2 << 30},
		{"garbage in a limit file is no limit", fstest.MapFS{
			"proc/self/cgroup":         file("0::/\n"),
			"sys/fs/cgroup/memory.max": file("lots\n"),
		}, 0},
		{"an unreadable /proc/self/cgroup: the roots are read", fstest.MapFS{
			"sys/fs/cgroup/memory.max": file("268435456\n"),
		}, 256 << 20},
		// Three dot-dots joined to sys/fs/cgroup as they are would reach etc/memory.max.
		{"a path escaping the hierarchy stays inside it", fstest.MapFS{
			"proc/self/cgroup":             file("0::/../../../etc\n"),
			"etc/memory.max":               file("1\n"),
			"sys/fs/cgroup/etc/memory.max": file("1073741824\n"),
		}, 1 << 30},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := cgroupMemoryLimit(tc.fs); got != tc.want {
				t.Errorf("limit %d, want %d", got, tc.want)
			}
		})
	}
}
