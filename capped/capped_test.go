package capped

import (
	"errors"
	"os"
	"strings"
	"testing"
)

func TestReadStopsAtTheLimit(t *testing.T) {
	f, err := os.Open("/dev/zero")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := ReadAll(f, 1<<20); !errors.Is(err, ErrTooLarge) || err.Error() != "larger than 1 MiB, the most read" {
		t.Errorf("/dev/zero: %v", err)
	}
	if data, err := ReadAll(strings.NewReader("abc"), 3); err != nil || string(data) != "abc" {
		t.Errorf("at the limit: %q %v", data, err)
	}
	if _, err := ReadAll(strings.NewReader("abcd"), 3); !errors.Is(err, ErrTooLarge) {
		t.Errorf("one past the limit: %v", err)
	}
	big := t.TempDir() + "/big"
	if err := os.WriteFile(big, make([]byte, 2048), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadFile(big, 1024); !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "1 KiB") {
		t.Errorf("a regular file over the limit: %v", err)
	}
}
