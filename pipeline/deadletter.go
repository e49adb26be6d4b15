package pipeline

import (
	"encoding/json"
	"fmt"
	"os"
	"sync"
	"time"
)

// deadLetter appends rejected messages, with the reason, to a JSON-lines
// file, so a malformed message is set aside and nothing is lost.
func deadLetter(path string) func(origin string, raw []byte, reason string) error {
	var mu sync.Mutex
	return func(origin string, raw []byte, reason string) error {
		entry := map[string]any{"time": time.Now().UTC().Format(time.RFC3339), "origin": origin, "reason": reason}
		if json.Valid(raw) {
			entry["message"] = json.RawMessage(raw)
		} else {
			entry["raw"] = string(raw)
		}
		line, err := json.Marshal(entry)
		if err != nil {
			return fmt.Errorf("dead letter: %w", err)
		}
		mu.Lock()
		defer mu.Unlock()
		f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			return fmt.Errorf("dead letter: %w", err)
		}
		defer f.Close()
		if _, err := f.Write(append(line, '\n')); err != nil {
			return fmt.Errorf("dead letter %s: %w", path, err)
		}
		return f.Sync()
	}
}
