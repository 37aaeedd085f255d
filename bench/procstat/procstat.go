// Package procstat reads what the benchmark needs about a process from Linux's /proc:
// CPU time, peak resident memory, the CPUs it may run on, and its children.
package procstat

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// ticksPerSecond is USER_HZ, the unit of the CPU times in /proc/<pid>/stat. It is 100 on
// every Linux architecture's user ABI (sysconf(_SC_CLK_TCK)), whatever the kernel's HZ.
const ticksPerSecond = 100

// Stat is what /proc/<pid>/stat says of a process.
type Stat struct {
	// PID and PPID are the process and its parent.
	PID, PPID int
	// Comm is the command name.
	Comm string
	// State is the one-letter state (R, S, Z, ...).
	State byte
	// CPU is user plus system time (utime + stime).
	CPU time.Duration
}

// ParseStat parses the content of /proc/<pid>/stat. The command name is in parentheses
// and may itself contain spaces and parentheses, so fields are counted from the last ')'.
func ParseStat(b []byte) (Stat, error) {
	var s Stat
	open := bytes.IndexByte(b, '(')
	end := bytes.LastIndexByte(b, ')')
	if open < 1 || end < open {
		return s, fmt.Errorf("procstat: stat without a command name: %q", clip(b))
	}
	pid, err := strconv.Atoi(string(bytes.TrimSpace(b[:open])))
	if err != nil {
		return s, fmt.Errorf("procstat: stat pid: %w", err)
	}
	s.PID, s.Comm = pid, string(b[open+1:end])
	// After ")": state(3) ppid(4) pgrp session tty_nr tpgid flags minflt cminflt majflt
	// cmajflt utime(14) stime(15) ...; rest[0] is field 3.
	rest := strings.Fields(string(b[end+1:]))
	if len(rest) < 13 || len(rest[0]) != 1 {
		return s, fmt.Errorf("procstat: stat has %d fields after the command name", len(rest))
	}
	s.State = rest[0][0]
	if s.PPID, err = strconv.Atoi(rest[1]); err != nil {
		return s, fmt.Errorf("procstat: stat ppid: %w", err)
	}
	utime, err1 := strconv.ParseUint(rest[11], 10, 64)
	stime, err2 := strconv.ParseUint(rest[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return s, fmt.Errorf("procstat: stat CPU times: %w", err)
	}
	s.CPU = time.Duration(utime+stime) * time.Second / ticksPerSecond
	return s, nil
}

// ReadStat reads /proc/<pid>/stat.
func ReadStat(pid int) (Stat, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return Stat{}, fmt.Errorf("procstat: %w", err)
	}
	return ParseStat(b)
}

// Status is what the benchmark reads from /proc/<pid>/status.
type Status struct {
	// PeakRSS is VmHWM, the resident set's high-water mark, in bytes.
	PeakRSS int64
	// RSS is VmRSS, the resident set now, in bytes; RSSAnon and RSSFile split it into
	// anonymous memory (heap, stacks) and file pages mapped in (e.g. a database's
	// memory-mapped files, which the kernel can drop and read back).
	RSS, RSSAnon, RSSFile int64
	// CPUs is Cpus_allowed_list, e.g. "0-1,3": where the process may run.
	CPUs string
}

// ParseStatus parses the content of /proc/<pid>/status.
func ParseStatus(b []byte) (Status, error) {
	var s Status
	var seen int
	for line := range strings.Lines(string(b)) {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		switch k {
		case "VmHWM", "VmRSS", "RssAnon", "RssFile":
			n, err := parseKB(v)
			if err != nil {
				return s, fmt.Errorf("procstat: status %s: %w", k, err)
			}
			switch k {
			case "VmHWM":
				s.PeakRSS = n
				seen++
			case "VmRSS":
				s.RSS = n
				seen++
			case "RssAnon":
				s.RSSAnon = n
			case "RssFile":
				s.RSSFile = n
			}
		case "Cpus_allowed_list":
			s.CPUs = v
		}
	}
	if seen < 2 {
		// Kernel threads and zombies have no memory lines.
		return s, errors.New("procstat: status without VmHWM and VmRSS")
	}
	return s, nil
}

func parseKB(v string) (int64, error) {
	num, unit, _ := strings.Cut(v, " ")
	if unit != "kB" {
		return 0, fmt.Errorf("unit %q, want kB", unit)
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("value %q", num)
	}
	return n << 10, nil
}

// ReadStatus reads /proc/<pid>/status.
func ReadStatus(pid int) (Status, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return Status{}, fmt.Errorf("procstat: %w", err)
	}
	return ParseStatus(b)
}

// Tree returns pid and all its living descendants (pid first), by scanning /proc. A
// server's helpers (nginx workers, clickgate's plugin processes) are its children, and
// their CPU time is part of what serving costs.
func Tree(pid int) ([]int, error) {
	return tree("/proc", pid)
}

func tree(root string, pid int) ([]int, error) {
	ents, err := os.ReadDir(root)
	if err != nil {
		return nil, fmt.Errorf("procstat: %w", err)
	}
	children := map[int][]int{}
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join(root, e.Name(), "stat"))
		if err != nil {
			continue // exited while we looked
		}
		st, err := ParseStat(b)
		if err != nil || st.State == 'Z' {
			continue
		}
		children[st.PPID] = append(children[st.PPID], p)
	}
	out := []int{pid}
	for i := 0; i < len(out); i++ {
		out = append(out, children[out[i]]...)
	}
	return out, nil
}

// CPUOf sums the CPU time of the given processes; processes that are gone count as 0.
func CPUOf(pids []int) time.Duration {
	var total time.Duration
	for _, p := range pids {
		if st, err := ReadStat(p); err == nil {
			total += st.CPU
		}
	}
	return total
}

func clip(b []byte) []byte {
	if len(b) > 80 {
		return b[:80]
	}
	return b
}
