// Package printable makes text from outside (message fields, task output,
// error messages that quote them) safe to show on a terminal: control
// characters, which could move the cursor, rewrite the screen or set the
// window title, are shown as escapes instead of being written raw. It
// imports no other package of the project.
package printable

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// String is s with every control character (C0 but tab, DEL, C1, and the
// Unicode line and paragraph separators) and every invalid byte shown as a
// Go escape (\x1b, \u2028).
func String(s string) string {
	if isPlain(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case unsafe(r) && r < 0x100:
			fmt.Fprintf(&b, `\x%02x`, r)
		case unsafe(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

// Line is String for a text shown on one line: newlines are escaped too.
func Line(s string) string { return strings.ReplaceAll(String(s), "\n", `\n`) }

func unsafe(r rune) bool {
	return r != '\t' && r != '\n' && (unicode.IsControl(r) || r == '\u2028' || r == '\u2029')
}

func isPlain(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 && c != '\t' && c != '\n' || c >= 0x7f {
			return false
		}
	}
	return true
}
