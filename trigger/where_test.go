package trigger

import (
	"sort"
	"strings"
	"testing"
)

// TestWhereTargetsLabels: an action with where: makes one job per task
// carrying the labels a lab must offer (with ${var}s from the message), the
// arch named in where: or none; with arches: each job also asks for its arch.
func TestWhereTargetsLabels(t *testing.T) {
	rules, err := ParseRules("where.yml", []byte(`- when: {message_type: KojiBuildPackageCompleted}
  do:
    - tasks: [boot-test]
      where: {board: beaglebone-black, cpu: cortex-a9, pkg: "${name}"}
    - tasks: [rpmlint]
    - tasks: [kernel-smoke]
      arches: [armv7hl, aarch64, noarch]
      where: {lab: lab-a}
    - tasks: [arm-only]
      where: {arch: armv7hl}
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	tr := New(Options{Rules: rules, Arches: []string{"x86_64"}})
	jobs := handle(t, tr, loadCorpus(t, "koji-build-state-change__10.json"))
	got := map[string]string{}
	for _, j := range jobs {
		var ls []string
		for k, v := range j.Labels {
			ls = append(ls, k+"="+v)
		}
		got[j.TaskName+"/"+j.Arch] = strings.Join(sorted(ls), ",")
	}
	want := map[string]string{
		"boot-test/":           "board=beaglebone-black,cpu=cortex-a9,pkg=python-ogr",
		"rpmlint/x86_64":       "",
		"kernel-smoke/armv7hl": "arch=armv7hl,lab=lab-a",
		"kernel-smoke/aarch64": "arch=aarch64,lab=lab-a",
		"kernel-smoke/noarch":  "lab=lab-a",
		"arm-only/armv7hl":     "arch=armv7hl",
	}
	if len(got) != len(want) {
		t.Fatalf("jobs %v, want %v", got, want)
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("job %s: labels %q (present %v), want %q", k, g, ok, v)
		}
	}
	ex, err := tr.Explain(loadCorpus(t, "koji-build-state-change__10.json"))
	if err != nil {
		t.Fatal(err)
	}
	if w := ex.Rules[0].Do[0].Where; w["pkg"] != "python-ogr" {
		t.Errorf("explain shows where: %v, want the templated labels", w)
	}
}

func TestWhereErrorsNameTheLine(t *testing.T) {
	for _, c := range []struct{ text, want string }{
		{"- when: {a: b}\n  do:\n    - tasks: [a]\n      where: [board]\n", "where.yml:4: where wants a mapping of labels"},
		{"- when: {a: b}\n  do:\n    - tasks: [a]\n      where: {board: {x: y}}\n", "where.yml:4: where: label \"board\" wants a value"},
		{"- when: {a: b}\n  do:\n    - tasks: [a]\n      arches: [x86_64]\n      where: {arch: armv7hl}\n", "where.yml:3: give the arch in where: or in arches:"},
	} {
		_, err := ParseRules("where.yml", []byte(c.text), nil)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("rules %q: got %v, want %q", c.text, err, c.want)
		}
	}
}

func sorted(s []string) []string {
	sort.Strings(s)
	return s
}
