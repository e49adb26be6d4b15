package printable

import "testing"

func TestControlsAreShownNotWritten(t *testing.T) {
	for in, want := range map[string]string{
		"xchat-0.5-1.fc20":     "xchat-0.5-1.fc20",
		"a\x1b]0;pwned\x07b":   `a\x1b]0;pwned\x07b`,
		"red \x1b[31mtext":     `red \x1b[31mtext`,
		"tab\tand\nnewline":    "tab\tand\nnewline",
		"del\x7f c1\u009b csi": `del\x7f c1\x9b csi`,
		"naïve ☃":              "naïve ☃",
		"bad \xff byte":        `bad \xff byte`,
		"line\u2028sep":        `line\u2028sep`,
		"carriage\rreturn":     `carriage\x0dreturn`,
	} {
		if got := String(in); got != want {
			t.Errorf("String(%q) = %q, want %q", in, got, want)
		}
	}
	if got := Line("a\nb\x1b"); got != `a\nb\x1b` {
		t.Errorf("Line = %q", got)
	}
}

func FuzzString(f *testing.F) {
	f.Add("a\x1b[2Jb\n")
	f.Fuzz(func(t *testing.T, s string) {
		out := Line(s)
		for i := 0; i < len(out); i++ {
			if c := out[i]; c < 0x20 && c != '\t' || c == 0x7f {
				t.Fatalf("Line(%q) = %q holds control byte %#x", s, out, c)
			}
		}
	})
}
