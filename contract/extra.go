package contract

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
)

// Extra holds the keys of a map that a type does not name.
type Extra map[string]any

// knownKeysCache holds knownKeys per type: read-only once stored.
var knownKeysCache sync.Map

// knownKeys lists the JSON names of a struct's tagged fields.
func knownKeys(t reflect.Type) map[string]bool {
	if keys, ok := knownKeysCache.Load(t); ok {
		return keys.(map[string]bool)
	}
	keys := map[string]bool{}
	defer knownKeysCache.Store(t, keys)
	for i := 0; i < t.NumField(); i++ {
		tag := t.Field(i).Tag.Get("json")
		name, _, _ := strings.Cut(tag, ",")
		if name != "" && name != "-" {
			keys[name] = true
		}
	}
	return keys
}

// marshalWithExtra writes the tagged fields of known (a plain struct without
// methods, to avoid recursion) and then the extra keys that do not clash.
func marshalWithExtra(known any, extra Extra) ([]byte, error) {
	base, err := json.Marshal(known)
	if err != nil {
		return nil, err
	}
	if len(extra) == 0 {
		return base, nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(base, &m); err != nil {
		return nil, err
	}
	for k, v := range extra {
		if _, clash := m[k]; clash {
			continue
		}
		raw, err := json.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("key %q: %w", k, err)
		}
		m[k] = raw
	}
	return json.Marshal(m)
}

// unmarshalWithExtra fills known (a pointer to a plain struct, without the
// type's methods) and puts the keys it does not name in extra.
func unmarshalWithExtra(data []byte, known any, extra *Extra) error {
	rest, err := splitExtra(data, known)
	if err != nil {
		return err
	}
	*extra = rest
	return nil
}

// splitExtra decodes the keys known names exactly into known and returns
// the others. The known part is decoded from those keys alone: Go matches
// struct fields case-insensitively, and an extra key such as "ArCh" must not
// land in (or break) the field of "arch".
func splitExtra(data []byte, known any) (Extra, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, err
	}
	if raw == nil {
		return nil, fmt.Errorf("expected a JSON object, got null")
	}
	names := knownKeys(reflect.TypeOf(known).Elem())
	exact := make(map[string]json.RawMessage, len(raw))
	var extra Extra
	// Where no extra key folds to a known name, the known part decodes
	// from data itself (extra keys are ignored then): one decode fewer,
	// and no re-encoding, which for results with long details was most
	// of the cost.
	clash := false
	for k, v := range raw {
		if names[k] {
			exact[k] = v
			continue
		}
		for name := range names {
			clash = clash || strings.EqualFold(k, name)
		}
		dec := json.NewDecoder(bytes.NewReader(v))
		dec.UseNumber()
		var val any
		if err := dec.Decode(&val); err != nil {
			return nil, fmt.Errorf("key %q: %w", k, err)
		}
		if extra == nil {
			extra = Extra{}
		}
		extra[k] = val
	}
	knownJSON := data
	if clash {
		var err error
		if knownJSON, err = json.Marshal(exact); err != nil {
			return nil, err
		}
	}
	if err := json.Unmarshal(knownJSON, known); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) && typeErr.Field != "" {
			return nil, fmt.Errorf("key %q: want %s, got %s", typeErr.Field, jsonKind(typeErr.Type), typeErr.Value)
		}
		return nil, err
	}
	return extra, nil
}

// ToMap converts any contract value to a plain map through its JSON form.
func ToMap(v any) (map[string]any, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		return nil, err
	}
	return m, nil
}

// FromMap fills a contract value from a plain map through its JSON form.
func FromMap(m map[string]any, v any) error {
	raw, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return json.Unmarshal(raw, v)
}

// jsonKind names a Go type as the JSON value it decodes from.
func jsonKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Int, reflect.Int64, reflect.Float64:
		return "a number"
	case reflect.Bool:
		return "true or false"
	case reflect.Slice:
		return "a list"
	case reflect.Map, reflect.Struct:
		return "an object"
	}
	return t.String()
}

// MarshalList encodes items as a JSON list of each item's own encoding:
// what json.Marshal writes for them, without checking and compacting every
// item's JSON again (the most of its cost for these types).
func MarshalList[T json.Marshaler](items []T) ([]byte, error) {
	out := []byte{'['}
	for i, it := range items {
		b, err := it.MarshalJSON()
		if err != nil {
			return nil, fmt.Errorf("item %d of the list: %w", i+1, err)
		}
		if i > 0 {
			out = append(out, ',')
		} else {
			out = slices.Grow(out, (len(b)+1)*len(items)+1) // items are much alike
		}
		out = append(out, b...)
	}
	return append(out, ']'), nil
}
