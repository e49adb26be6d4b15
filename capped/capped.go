// Package capped reads input of outside origin (a file named on the command
// line, a rules file, a pipe, task output) with a ceiling, so that
// /dev/zero or a runaway task ends in one clear line instead of an
// out-of-memory crash. It imports no other package of the project.
package capped

import (
	"errors"
	"fmt"
	"io"
	"os"
)

// ErrTooLarge is the error of input over its ceiling.
var ErrTooLarge = errors.New("too large")

// TooLarge is ErrTooLarge with the ceiling, for messages.
type TooLarge struct{ Limit int64 }

func (e *TooLarge) Error() string { return fmt.Sprintf("larger than %s, the most read", Size(e.Limit)) }

// Is makes a *TooLarge match ErrTooLarge.
func (e *TooLarge) Is(target error) bool { return target == ErrTooLarge }

// ReadAll reads r to its end, or fails with a *TooLarge past limit bytes
// without reading further. A regular file over the limit is refused by its
// size, unread.
func ReadAll(r io.Reader, limit int64) ([]byte, error) {
	if f, ok := r.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() && fi.Size() > limit {
			return nil, &TooLarge{Limit: limit}
		}
	}
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, &TooLarge{Limit: limit}
	}
	return data, nil
}

// ReadFile is os.ReadFile with a ceiling. As ReadAll's, a *TooLarge does
// not name the file: the caller says what the file was for.
func ReadFile(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ReadAll(f, limit)
}

// Size writes a byte count the way limits are said: 64 MiB, 512 KiB.
func Size(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}
