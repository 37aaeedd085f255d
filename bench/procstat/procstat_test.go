package procstat

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseStat(t *testing.T) {
	// A command name with spaces and parentheses, as a process can set for itself.
	in := "4242 (my (odd) name) S 4000 4242 4242 0 -1 4194560 1234 0 0 0 250 75 0 0 20 0 12 0 123456 1000000 2000 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n"
	st, err := ParseStat([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	want := Stat{PID: 4242, PPID: 4000, Comm: "my (odd) name", State: 'S', CPU: 3250 * time.Millisecond}
	if st != want {
		t.Fatalf("got %+v, want %+v", st, want)
	}
	for _, bad := range []string{
		"", "4242", "4242 (x", "x (comm) S 1 2 3", "1 (comm) S 1 2 3 4 5 6 7 8 9 10",
		"1 (comm) S 1 1 1 0 -1 0 0 0 0 0 ten 5 0", "1 (comm) SS 1 1 1 0 -1 0 0 0 0 0 1 5 0",
	} {
		if _, err := ParseStat([]byte(bad)); err == nil {
			t.Errorf("ParseStat(%q) accepted", bad)
		}
	}
}

func TestParseStatus(t *testing.T) {
	in := "Name:\tclickgate\nState:\tS (sleeping)\nVmPeak:\t 2010224 kB\nVmHWM:\t  262144 kB\nVmRSS:\t  131072 kB\nRssAnon:\t   98304 kB\nRssFile:\t   32768 kB\nThreads:\t12\nCpus_allowed:\t2\nCpus_allowed_list:\t1\n"
	st, err := ParseStatus([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if st.PeakRSS != 256<<20 || st.RSS != 128<<20 || st.RSSAnon != 96<<20 || st.RSSFile != 32<<20 || st.CPUs != "1" {
		t.Fatalf("got %+v", st)
	}
	for _, bad := range []string{
		"Name:\tkthreadd\nCpus_allowed_list:\t0-1\n",
		"VmHWM:\t 12 MB\nVmRSS:\t 1 kB\n",
		"VmHWM:\t -5 kB\nVmRSS:\t 1 kB\n",
	} {
		if _, err := ParseStatus([]byte(bad)); err == nil {
			t.Errorf("ParseStatus(%q) accepted", bad)
		}
	}
}

func TestTree(t *testing.T) {
	root := t.TempDir()
	proc := func(pid, ppid, state string) {
		os.MkdirAll(filepath.Join(root, pid), 0o755)
		line := pid + " (p" + pid + ") " + state + " " + ppid + " 1 1 0 -1 0 0 0 0 0 7 3 0 0"
		os.WriteFile(filepath.Join(root, pid, "stat"), []byte(line), 0o644)
	}
	proc("1", "0", "S")
	proc("10", "1", "S")  // the server
	proc("11", "10", "S") // its worker
	proc("12", "11", "R") // a grandchild
	proc("13", "10", "Z") // a zombie child: no CPU to read
	proc("20", "1", "S")  // unrelated
	os.MkdirAll(filepath.Join(root, "self"), 0o755)
	got, err := tree(root, 10)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, []int{10, 11, 12}) {
		t.Fatalf("tree = %v, want [10 11 12]", got)
	}
}

func TestReadSelf(t *testing.T) {
	st, err := ReadStat(os.Getpid())
	if err != nil || st.PID != os.Getpid() || st.PPID != os.Getppid() {
		t.Fatalf("ReadStat(self) = %+v, %v", st, err)
	}
	s, err := ReadStatus(os.Getpid())
	if err != nil || s.PeakRSS <= 0 || s.PeakRSS < s.RSS || strings.TrimSpace(s.CPUs) == "" {
		t.Fatalf("ReadStatus(self) = %+v, %v", s, err)
	}
	if pids, err := Tree(os.Getpid()); err != nil || pids[0] != os.Getpid() {
		t.Fatalf("Tree(self) = %v, %v", pids, err)
	}
}
