package results

import (
	"encoding/binary"
	"reflect"
	"testing"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

var yamlishSeeds = []string{
	"item: xchat-0.5-1.fc20\ntype: koji_build\noutcome: PASSED\nnote: 0 errors, 10 warnings\narch: x86_64\ndetails:\n  output: |-\n    xchat.x86_64: W: no-documentation\n    xchat.x86_64: W: spelling-error %description -l en_US\n",
	"outcome: FAILED\ncount: 3\nratio: 1.0\nok: true\nnothing: ~\nwhen: 2001-12-14\n",
	"details:\n  output: |\n    a\n\n      b\n    c\n\nnote: x\n",
	"a:\nb: c\n",
	"key: value # comment\n",
	"key: 'quoted'\n",
	"list:\n  - a\n  - b\n",
	"output: |-\n   three\n  two\n",
	"x: \"a\\tb\"\n",
	"k: v\nk: w\n",
	"Yes: no\n",
	"n: 0x1F\no: 0o17\ne: 1e3\ninf: .inf\n",
	"outer:\n  inner:\n    deep: 1 2\n  back: x\n",
}

// The fast path and yaml.v3 give the same fields for every block the fast
// path takes.
func FuzzYAMLishAgreesWithYAML(f *testing.F) {
	for _, s := range yamlishSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, block string) {
		fast, ok := yamlish(block)
		if !ok {
			return
		}
		var v any
		if err := yaml.Unmarshal([]byte(block), &v); err != nil {
			t.Fatalf("yamlish took %q, which yaml.v3 refuses: %v", block, err)
		}
		want, _ := normalize(v).(map[string]any)
		if want == nil {
			want = map[string]any{}
		}
		if !reflect.DeepEqual(fast, want) {
			t.Fatalf("yamlish(%q)\n = %#v\nyaml.v3 gives %#v", block, fast, want)
		}
	})
}

func TestYAMLishTakesTheCommonShape(t *testing.T) {
	m, ok := yamlish(yamlishSeeds[0])
	if !ok {
		t.Fatal("the rpmlint shape goes to yaml.v3")
	}
	d, _ := m["details"].(map[string]any)
	if m["note"] != "0 errors, 10 warnings" || d["output"] != "xchat.x86_64: W: no-documentation\nxchat.x86_64: W: spelling-error %description -l en_US" {
		t.Errorf("decoded %#v", m)
	}
	for _, s := range []string{"key: value # comment\n", "key: 'quoted'\n", "list:\n  - a\n", "k: v\nk: w\n"} {
		if _, ok := yamlish(s); ok {
			t.Errorf("yamlish took %q", s)
		}
	}
}

// printable's word-at-a-time check says what a rune-by-rune one says.
func FuzzPrintableAgreesWithRunes(f *testing.F) {
	for _, s := range yamlishSeeds {
		f.Add(s)
	}
	f.Add("abcdefg\x7fhijklmno")
	f.Add("abcdefgh\x1fijklmnop\u00e9\ufeff")
	f.Add("abc\xffdefghijklmnop")
	f.Fuzz(func(t *testing.T, s string) {
		want := utf8.ValidString(s)
		for _, r := range s {
			want = want && yamlPrintable(r)
		}
		if got := printable(s); got != want {
			t.Fatalf("printable(%q) = %v, want %v", s, got, want)
		}
	})
}

// Every byte value at every place in a word of otherwise plain ASCII.
func TestPlainASCIIEachByteEachPlace(t *testing.T) {
	for place := range 8 {
		for c := range 256 {
			word := []byte("abcdefgh")
			word[place] = byte(c)
			want := c >= 0x20 && c <= 0x7e
			if got := plainASCII(binary.LittleEndian.Uint64(word)); got != want {
				t.Errorf("plainASCII(%q) = %v, want %v", word, got, want)
			}
		}
	}
}
