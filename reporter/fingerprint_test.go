package reporter

import (
	"hash/fnv"
	"sort"
	"strings"
	"testing"
)

// fingerprint is hash/fnv's FNV-1a over the fields, each ended by a zero
// byte, the arches sorted: the same number as before it was written out.
func TestFingerprintIsFNV1a(t *testing.T) {
	for _, c := range []struct {
		testcase, outcome, note, ref string
		item, typ, arch              []string
	}{
		{"dist.rpmlint", "passed", "0 errors, 10 warnings", "https://example.org/a", []string{"xchat-0.5-1.fc20"}, []string{"koji_build"}, []string{"x86_64"}},
		{"", "", "", "", nil, nil, nil},
		{"dist.depcheck", "FAILED", "née ✓", "", []string{"a", "b"}, []string{"bodhi_update"}, []string{"x86_64", "armhfp", "i386"}},
	} {
		h := fnv.New64a()
		arch := append([]string(nil), c.arch...)
		sort.Strings(arch)
		for _, s := range []string{c.testcase, strings.ToUpper(c.outcome), c.note, c.ref, strings.Join(c.item, ","), strings.Join(c.typ, ","), strings.Join(arch, ",")} {
			h.Write([]byte(s))
			h.Write([]byte{0})
		}
		if got, want := fingerprint(c.testcase, c.outcome, c.note, c.ref, c.item, c.typ, c.arch), h.Sum64(); got != want {
			t.Errorf("fingerprint%v = %x, want %x", c, got, want)
		}
	}
}
