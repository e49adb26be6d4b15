package results

import (
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// The YAML block of almost every TAP13 test has one shape: a mapping of
// plain scalars, a nested mapping or two, and literal block scalars for
// output (TAP's "YAMLish"). Decoding it with yaml.v3 costs 15 µs, three
// quarters of reading a TAP stream (profiled on 376,000 rpmlint tests).
// yamlish decodes that shape directly into what yaml.v3 would give, and
// says ok=false for anything else (quotes, flows, lists, anchors, tags,
// comments, tabs, other block styles, scalars that may be typed), which
// then goes to yaml.v3. FuzzYAMLishAgreesWithYAML holds the two to the
// same answers.

// yamlish decodes block, or says it cannot.
func yamlish(block string) (map[string]any, bool) {
	if !strings.HasSuffix(block, "\n") {
		// Whether a literal's last line ends in a newline is up to its
		// last byte: keep the rule simple, and leave that to yaml.v3.
		return nil, false
	}
	if !printable(block) {
		return nil, false
	}
	lines := strings.Split(strings.TrimSuffix(block, "\n"), "\n")
	m, rest, ok := yamlishMapping(lines, 0)
	if !ok || len(rest) > 0 {
		return nil, false
	}
	return m, true
}

// printable says whether s is valid UTF-8 of yamlPrintable runes only. As
// the tab and CR are not among them, the decoder below never meets one.
func printable(s string) bool {
	for i := 0; i < len(s); {
		// Eight plain ASCII bytes at a time: most of a block is.
		if i+8 <= len(s) && plainASCII(uint64(s[i])|uint64(s[i+1])<<8|uint64(s[i+2])<<16|uint64(s[i+3])<<24|
			uint64(s[i+4])<<32|uint64(s[i+5])<<40|uint64(s[i+6])<<48|uint64(s[i+7])<<56) {
			i += 8
			continue
		}
		if c := s[i]; c < utf8.RuneSelf {
			if c != '\n' && (c < 0x20 || c > 0x7e) {
				return false
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if size == 1 || !yamlPrintable(r) {
			return false // invalid UTF-8 decodes as (RuneError, 1)
		}
		i += size
	}
	return true
}

// plainASCII says whether each of the eight bytes in x is in 0x20–0x7e.
// A byte is below 0x20 when subtracting 0x20 borrows into its top bit,
// and is 0x7f when x^0x7f… has a zero byte there; only ASCII has the top
// bit clear.
func plainASCII(x uint64) bool {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	below := (x - 0x20*ones) &^ x
	del := x ^ 0x7f*ones
	isDel := (del - ones) &^ del
	return (x|below|isDel)&highs == 0
}

// yamlPrintable is YAML 1.2's printable set (and what yaml.v3 accepts), but
// the tab, CR, NEL and the byte-order mark, which this path leaves alone.
func yamlPrintable(r rune) bool {
	switch {
	case r == '\n', r >= 0x20 && r <= 0x7e:
		return true
	case r >= 0xa0 && r <= 0xd7ff, r >= 0xe000 && r <= 0xfffd && r != 0xfeff, r >= 0x10000 && r <= 0x10ffff:
		return true
	}
	return false // controls
}

func indentOf(line string) int { return len(line) - len(strings.TrimLeft(line, " ")) }

// yamlishMapping decodes the mapping whose keys are at indent, returning
// the lines after it.
func yamlishMapping(lines []string, indent int) (map[string]any, []string, bool) {
	m := map[string]any{}
	for len(lines) > 0 {
		line := lines[0]
		if strings.TrimSpace(line) == "" {
			return nil, nil, false // blank lines between keys: let yaml.v3 say
		}
		ind := indentOf(line)
		if ind < indent {
			break
		}
		if ind > indent {
			return nil, nil, false
		}
		key, value, found := strings.Cut(line[ind:], ":")
		if !found || !plainKey(key) {
			return nil, nil, false
		}
		if _, dup := m[key]; dup {
			return nil, nil, false // yaml.v3 refuses a repeated key
		}
		lines = lines[1:]
		switch {
		case value == "":
			// A nested mapping, or nothing (null).
			if len(lines) == 0 || strings.TrimSpace(lines[0]) == "" || indentOf(lines[0]) <= indent {
				m[key] = nil
				continue
			}
			sub, rest, ok := yamlishMapping(lines, indentOf(lines[0]))
			if !ok {
				return nil, nil, false
			}
			m[key], lines = sub, rest
		case value[0] != ' ':
			return nil, nil, false // "key:value" is one plain scalar in YAML
		case value == " |" || value == " |-":
			text, rest, ok := literal(lines, indent, value == " |-")
			if !ok {
				return nil, nil, false
			}
			m[key], lines = text, rest
		default:
			v, ok := plainScalar(value[1:])
			if !ok {
				return nil, nil, false
			}
			m[key] = v
		}
	}
	return m, lines, true
}

// plainKey accepts keys that are strings to yaml.v3 whatever they say:
// a letter or '_' first, then letters, digits, '_', '-', '.', and no
// longer than YAML's 1,024 characters for a key without an indicator.
func plainKey(k string) bool {
	if k == "" || len(k) > 1024 {
		return false
	}
	for i, c := range k {
		letter := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_'
		if !letter && (i == 0 || !(c >= '0' && c <= '9' || c == '-' || c == '.')) {
			return false
		}
	}
	switch strings.ToLower(k) {
	case "true", "false", "null", "y", "n", "yes", "no", "on", "off":
		return false
	}
	return true
}

// plainScalar is a value yaml.v3 would read as this very string: no
// character that starts or ends YAML syntax, no comment, and nothing that
// may resolve to another type (numbers, booleans, null, timestamps), which
// yaml.v3 reads itself.
func plainScalar(s string) (any, bool) {
	if s != strings.TrimSpace(s) || s == "" {
		return nil, false
	}
	if strings.Contains(s, ": ") || strings.Contains(s, " #") || strings.HasSuffix(s, ":") {
		return nil, false
	}
	switch s[0] {
	case '-', '?', ':', ',', '[', ']', '{', '}', '#', '&', '*', '!', '|', '>', '\'', '"', '%', '@', '`':
		return nil, false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f || c >= 0x80 {
			return nil, false // control characters, and non-ASCII: yaml.v3 knows best
		}
	}
	// A scalar with a space is never a number, a boolean or null.
	if !strings.Contains(s, " ") {
		if c := s[0]; c == '+' || c == '.' || c >= '0' && c <= '9' {
			return typedScalar(s)
		}
		switch strings.ToLower(s) {
		case "true", "false", "null", "~", "y", "n", "yes", "no", "on", "off":
			return typedScalar(s)
		}
	}
	return s, true
}

// typedScalar reads a lone scalar with yaml.v3: rare, and short.
func typedScalar(s string) (any, bool) {
	var v any
	if err := yaml.Unmarshal([]byte(s), &v); err != nil {
		return nil, false
	}
	return v, true
}

// literal reads a literal block scalar ("|" keeps one final newline, "|-"
// none) whose lines are indented more than the key's.
func literal(lines []string, keyIndent int, strip bool) (string, []string, bool) {
	n := 0
	blockIndent := -1
	for n < len(lines) {
		l := lines[n]
		if strings.TrimSpace(l) == "" {
			if l != "" && (blockIndent < 0 || len(l) > blockIndent) {
				// Spaces on an empty line before the first, or past the
				// indent: YAML has rules for those; yaml.v3 applies them.
				return "", nil, false
			}
			n++
			continue
		}
		ind := indentOf(l)
		if ind <= keyIndent {
			break
		}
		if blockIndent < 0 {
			blockIndent = ind
		}
		if ind < blockIndent {
			return "", nil, false
		}
		n++
	}
	// Trailing empty lines belong to the chomping, not to what follows.
	end := n
	for end > 0 && strings.TrimSpace(lines[end-1]) == "" {
		end--
	}
	if blockIndent < 0 || end == 0 {
		return "", nil, false // an empty block: yaml.v3 decides
	}
	if n < len(lines) && n != end {
		return "", nil, false // empty lines before the next key: yaml.v3 decides
	}
	size := 0
	for _, l := range lines[:end] {
		size += max(len(l)-blockIndent, 0) + 1
	}
	var b strings.Builder
	b.Grow(size)
	for i := 0; i < end; i++ {
		if len(lines[i]) >= blockIndent {
			b.WriteString(lines[i][blockIndent:])
		}
		if i < end-1 || !strip {
			b.WriteByte('\n')
		}
	}
	return b.String(), lines[n:], true
}
