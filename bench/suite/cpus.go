package suite

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// ParseCPUList parses a Linux CPU list such as "0-2,5" (the format of taskset -c and
// /proc/<pid>/status Cpus_allowed_list).
func ParseCPUList(s string) ([]int, error) {
	var out []int
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(strings.TrimSpace(part), "-")
		a, err := strconv.Atoi(lo)
		if err != nil || a < 0 {
			return nil, fmt.Errorf("cpu list %q: bad cpu %q", s, lo)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil || b < a || b-a > 4096 {
				return nil, fmt.Errorf("cpu list %q: bad range %q", s, part)
			}
		}
		for c := a; c <= b; c++ {
			out = append(out, c)
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// FormatCPUList writes CPUs in the compact list format ("0-2,5").
func FormatCPUList(cpus []int) string {
	cpus = slices.Clone(cpus)
	slices.Sort(cpus)
	var b strings.Builder
	for i := 0; i < len(cpus); {
		j := i
		for j+1 < len(cpus) && cpus[j+1] == cpus[j]+1 {
			j++
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(cpus[i]))
		if j > i {
			b.WriteByte('-')
			b.WriteString(strconv.Itoa(cpus[j]))
		}
		i = j + 1
	}
	return b.String()
}

// AllowedCPUs returns the CPUs this process may run on.
func AllowedCPUs() ([]int, error) {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return nil, fmt.Errorf("sched_getaffinity: %w", err)
	}
	var out []int
	for c := 0; c < len(set)*64; c++ {
		if set.IsSet(c) {
			out = append(out, c)
		}
	}
	return out, nil
}

// Placement says which CPUs the server under test and the load generator get.
type Placement struct {
	// Pinned is false when the machine (or the user) does not allow separate CPUs.
	Pinned bool `json:"pinned"`
	// Server runs the server under test and its child processes (plugins, nginx workers).
	Server []int `json:"server_cpus"`
	// Generator runs clickbench itself (load generator and driver), the webhook sink
	// and the Kafka broker, so that the server's CPUs serve nothing else.
	Generator []int `json:"generator_cpus"`
	// Note says why there is no pinning, when there is none.
	Note string `json:"note,omitempty"`
}

// Plan decides the placement: the server on the last allowed CPU (nginx and clickgate
// are compared on one core each), everything else on the others; explicit lists win.
func Plan(allowed, server, generator []int, disable bool) (Placement, error) {
	switch {
	case disable:
		return Placement{Note: "pinning turned off (-pin=false)"}, nil
	case len(allowed) < 2:
		return Placement{Note: fmt.Sprintf("only %d CPU available: server and generator share it", len(allowed))}, nil
	}
	if len(server) == 0 {
		server = allowed[len(allowed)-1:]
	}
	if len(generator) == 0 {
		for _, c := range allowed {
			if !slices.Contains(server, c) {
				generator = append(generator, c)
			}
		}
	}
	for _, c := range append(slices.Clone(server), generator...) {
		if !slices.Contains(allowed, c) {
			return Placement{}, fmt.Errorf("cpu %d is not available (allowed: %s)", c, FormatCPUList(allowed))
		}
	}
	if len(generator) == 0 {
		return Placement{}, fmt.Errorf("no CPU left for the generator (server %s)", FormatCPUList(server))
	}
	for _, c := range server {
		if slices.Contains(generator, c) {
			return Placement{}, fmt.Errorf("cpu %d is given to both the server and the generator", c)
		}
	}
	return Placement{Pinned: true, Server: server, Generator: generator}, nil
}

// ExecPinned replaces the current process with argv, running on the given CPUs only.
// The affinity is set on the calling OS thread just before execve, and the new program
// starts with that thread alone, so every thread it ever creates inherits it (setting
// the affinity of a running Go process from outside would miss threads). It returns only
// on failure.
func ExecPinned(cpus []int, argv []string) error {
	if len(argv) == 0 {
		return fmt.Errorf("pin: no command")
	}
	path, err := exec.LookPath(argv[0])
	if err != nil {
		return fmt.Errorf("pin: %w", err)
	}
	runtime.LockOSThread()
	var set unix.CPUSet
	for _, c := range cpus {
		set.Set(c)
	}
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		return fmt.Errorf("pin: sched_setaffinity %s: %w", FormatCPUList(cpus), err)
	}
	if err := syscall.Exec(path, argv, os.Environ()); err != nil {
		return fmt.Errorf("pin: exec %s: %w", path, err)
	}
	return nil
}
