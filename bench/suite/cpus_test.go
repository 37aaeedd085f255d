package suite

import (
	"slices"
	"testing"
)

func TestCPUList(t *testing.T) {
	cases := []struct {
		in   string
		want []int
		out  string
	}{
		{"1", []int{1}, "1"},
		{"0-3", []int{0, 1, 2, 3}, "0-3"},
		{"0,2-3,7", []int{0, 2, 3, 7}, "0,2-3,7"},
		{" 3,1,1 ", []int{1, 3}, "1,3"},
		{"", nil, ""},
	}
	for _, c := range cases {
		got, err := ParseCPUList(c.in)
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("ParseCPUList(%q) = %v, %v; want %v", c.in, got, err, c.want)
		}
		if s := FormatCPUList(got); s != c.out {
			t.Errorf("FormatCPUList(%v) = %q, want %q", got, s, c.out)
		}
	}
	for _, bad := range []string{"a", "-1", "3-1", "1-", "0-99999"} {
		if _, err := ParseCPUList(bad); err == nil {
			t.Errorf("ParseCPUList(%q) accepted", bad)
		}
	}
}

func TestPlan(t *testing.T) {
	p, err := Plan([]int{0, 1}, nil, nil, false)
	if err != nil || !p.Pinned || !slices.Equal(p.Server, []int{1}) || !slices.Equal(p.Generator, []int{0}) {
		t.Fatalf("two CPUs: %+v, %v", p, err)
	}
	p, err = Plan([]int{0, 1, 2, 3}, []int{2, 3}, nil, false)
	if err != nil || !slices.Equal(p.Generator, []int{0, 1}) {
		t.Fatalf("explicit server: %+v, %v", p, err)
	}
	if p, _ := Plan([]int{0}, nil, nil, false); p.Pinned || p.Note == "" {
		t.Fatalf("one CPU: %+v", p)
	}
	if p, _ := Plan([]int{0, 1}, nil, nil, true); p.Pinned {
		t.Fatalf("disabled: %+v", p)
	}
	for _, c := range []struct{ server, gen []int }{{[]int{5}, nil}, {[]int{0, 1}, nil}, {[]int{1}, []int{1}}} {
		if _, err := Plan([]int{0, 1}, c.server, c.gen, false); err == nil {
			t.Errorf("Plan(server %v, generator %v) accepted", c.server, c.gen)
		}
	}
}
