// Package xmlrpc encodes and decodes XML-RPC calls and responses, with the
// extensions Koji's hub uses (<nil/> and <i8>). Values decode to nil, bool,
// int64, float64, string, []byte (base64), []any and map[string]any;
// dateTime.iso8601 decodes to its text.
package xmlrpc

import (
	"bufio"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Fault is an XML-RPC fault response.
type Fault struct {
	Code   int
	String string
}

func (f *Fault) Error() string { return fmt.Sprintf("fault %d: %s", f.Code, f.String) }

// EncodeCall writes a methodCall.
func EncodeCall(w io.Writer, method string, params []any) error {
	bw := bufio.NewWriter(w)
	bw.WriteString(`<?xml version="1.0"?>` + "\n<methodCall><methodName>")
	xml.EscapeText(bw, []byte(method))
	bw.WriteString("</methodName><params>")
	for i, p := range params {
		bw.WriteString("<param>")
		if err := encodeValue(bw, p, 0); err != nil {
			return fmt.Errorf("param %d: %w", i+1, err)
		}
		bw.WriteString("</param>")
	}
	bw.WriteString("</params></methodCall>\n")
	return bw.Flush()
}

// EncodeResponse writes a successful methodResponse holding v.
func EncodeResponse(w io.Writer, v any) error {
	bw := bufio.NewWriter(w)
	bw.WriteString(`<?xml version="1.0"?>` + "\n<methodResponse><params><param>")
	if err := encodeValue(bw, v, 0); err != nil {
		return err
	}
	bw.WriteString("</param></params></methodResponse>\n")
	return bw.Flush()
}

// EncodeFault writes a fault methodResponse.
func EncodeFault(w io.Writer, f *Fault) error {
	bw := bufio.NewWriter(w)
	bw.WriteString(`<?xml version="1.0"?>` + "\n<methodResponse><fault>")
	if err := encodeValue(bw, map[string]any{"faultCode": f.Code, "faultString": f.String}, 0); err != nil {
		return err
	}
	bw.WriteString("</fault></methodResponse>\n")
	return bw.Flush()
}

const maxDepth = 64

func encodeValue(w *bufio.Writer, v any, depth int) error {
	if depth > maxDepth {
		return errors.New("value nested too deeply")
	}
	w.WriteString("<value>")
	err := encodeInner(w, v, depth)
	w.WriteString("</value>")
	return err
}

func encodeInner(w *bufio.Writer, v any, depth int) error {
	switch x := v.(type) {
	case nil:
		w.WriteString("<nil/>")
	case bool:
		if x {
			w.WriteString("<boolean>1</boolean>")
		} else {
			w.WriteString("<boolean>0</boolean>")
		}
	case int:
		writeInt(w, int64(x))
	case int32:
		writeInt(w, int64(x))
	case int64:
		writeInt(w, x)
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return fmt.Errorf("cannot encode %v as an XML-RPC double", x)
		}
		w.WriteString("<double>" + strconv.FormatFloat(x, 'f', -1, 64) + "</double>")
	case string:
		w.WriteString("<string>")
		xml.EscapeText(w, []byte(x))
		w.WriteString("</string>")
	case []byte:
		w.WriteString("<base64>" + base64.StdEncoding.EncodeToString(x) + "</base64>")
	case time.Time:
		w.WriteString("<dateTime.iso8601>" + x.UTC().Format("20060102T15:04:05") + "</dateTime.iso8601>")
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		w.WriteString("<struct>")
		for _, k := range keys {
			w.WriteString("<member><name>")
			xml.EscapeText(w, []byte(k))
			w.WriteString("</name>")
			if err := encodeValue(w, x[k], depth+1); err != nil {
				return fmt.Errorf("member %s: %w", k, err)
			}
			w.WriteString("</member>")
		}
		w.WriteString("</struct>")
	case []any:
		w.WriteString("<array><data>")
		for i, e := range x {
			if err := encodeValue(w, e, depth+1); err != nil {
				return fmt.Errorf("item %d: %w", i, err)
			}
		}
		w.WriteString("</data></array>")
	default:
		rv := reflect.ValueOf(v)
		switch {
		case rv.Kind() == reflect.Slice:
			items := make([]any, rv.Len())
			for i := range items {
				items[i] = rv.Index(i).Interface()
			}
			return encodeInner(w, items, depth)
		case rv.Kind() == reflect.Map && rv.Type().Key().Kind() == reflect.String:
			m := make(map[string]any, rv.Len())
			for _, k := range rv.MapKeys() {
				m[k.String()] = rv.MapIndex(k).Interface()
			}
			return encodeInner(w, m, depth)
		}
		return fmt.Errorf("cannot encode %T in XML-RPC", v)
	}
	return nil
}

func writeInt(w *bufio.Writer, n int64) {
	// Koji's hub sends <i8> for values outside 32 bits; so do we.
	if n >= math.MinInt32 && n <= math.MaxInt32 {
		w.WriteString("<int>" + strconv.FormatInt(n, 10) + "</int>")
		return
	}
	w.WriteString("<i8>" + strconv.FormatInt(n, 10) + "</i8>")
}

// decoder walks the token stream, skipping whitespace between elements.
type decoder struct{ d *xml.Decoder }

func newDecoder(r io.Reader) *decoder {
	d := xml.NewDecoder(r)
	d.Strict = true
	return &decoder{d: d}
}

// next returns the next start or end element, skipping blank text,
// comments and processing instructions.
func (d *decoder) next() (xml.Token, error) {
	for {
		tok, err := d.d.Token()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil, io.ErrUnexpectedEOF
			}
			return nil, err
		}
		switch t := tok.(type) {
		case xml.StartElement, xml.EndElement:
			return t, nil
		case xml.CharData:
			if strings.TrimSpace(string(t)) != "" {
				return nil, fmt.Errorf("unexpected text %q", truncate(string(t)))
			}
		}
	}
}

func truncate(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

func (d *decoder) expectStart(name string) error {
	tok, err := d.next()
	if err != nil {
		return err
	}
	if s, ok := tok.(xml.StartElement); !ok || s.Name.Local != name {
		return fmt.Errorf("want <%s>, got %s", name, describe(tok))
	}
	return nil
}

func (d *decoder) expectEnd(name string) error {
	tok, err := d.next()
	if err != nil {
		return err
	}
	if e, ok := tok.(xml.EndElement); !ok || e.Name.Local != name {
		return fmt.Errorf("want </%s>, got %s", name, describe(tok))
	}
	return nil
}

func describe(tok xml.Token) string {
	switch t := tok.(type) {
	case xml.StartElement:
		return "<" + t.Name.Local + ">"
	case xml.EndElement:
		return "</" + t.Name.Local + ">"
	}
	return fmt.Sprintf("%T", tok)
}

// text reads character data up to the end of the current element.
func (d *decoder) text(name string) (string, error) {
	var sb strings.Builder
	for {
		tok, err := d.d.Token()
		if err != nil {
			return "", fmt.Errorf("in <%s>: %w", name, err)
		}
		switch t := tok.(type) {
		case xml.CharData:
			sb.Write(t)
		case xml.EndElement:
			return sb.String(), nil
		case xml.StartElement:
			return "", fmt.Errorf("unexpected <%s> in <%s>", t.Name.Local, name)
		}
	}
}

// value decodes the content of a <value> element whose start tag has been read.
func (d *decoder) value(depth int) (any, error) {
	if depth > maxDepth {
		return nil, errors.New("value nested too deeply")
	}
	var sb strings.Builder
	var start *xml.StartElement
	for start == nil {
		tok, err := d.d.Token()
		if err != nil {
			return nil, fmt.Errorf("in <value>: %w", err)
		}
		switch t := tok.(type) {
		case xml.CharData:
			sb.Write(t)
		case xml.EndElement:
			// <value>text</value> without a type is a string.
			return sb.String(), nil
		case xml.StartElement:
			s := t.Copy()
			start = &s
		}
	}
	if strings.TrimSpace(sb.String()) != "" {
		return nil, fmt.Errorf("text %q before <%s> in <value>", truncate(sb.String()), start.Name.Local)
	}
	name := start.Name.Local
	var v any
	switch name {
	case "nil":
		if err := d.expectEnd("nil"); err != nil {
			return nil, err
		}
	case "struct":
		m := map[string]any{}
		for {
			tok, err := d.next()
			if err != nil {
				return nil, err
			}
			if e, ok := tok.(xml.EndElement); ok && e.Name.Local == "struct" {
				break
			}
			if s, ok := tok.(xml.StartElement); !ok || s.Name.Local != "member" {
				return nil, fmt.Errorf("want <member> in <struct>, got %s", describe(tok))
			}
			if err := d.expectStart("name"); err != nil {
				return nil, err
			}
			key, err := d.text("name")
			if err != nil {
				return nil, err
			}
			if err := d.expectStart("value"); err != nil {
				return nil, fmt.Errorf("member %s: %w", key, err)
			}
			mv, err := d.value(depth + 1)
			if err != nil {
				return nil, fmt.Errorf("member %s: %w", key, err)
			}
			m[key] = mv
			if err := d.expectEnd("member"); err != nil {
				return nil, err
			}
		}
		v = m
	case "array":
		if err := d.expectStart("data"); err != nil {
			return nil, err
		}
		items := []any{}
		for {
			tok, err := d.next()
			if err != nil {
				return nil, err
			}
			if e, ok := tok.(xml.EndElement); ok && e.Name.Local == "data" {
				break
			}
			if s, ok := tok.(xml.StartElement); !ok || s.Name.Local != "value" {
				return nil, fmt.Errorf("want <value> in <array>, got %s", describe(tok))
			}
			iv, err := d.value(depth + 1)
			if err != nil {
				return nil, fmt.Errorf("item %d: %w", len(items), err)
			}
			items = append(items, iv)
		}
		if err := d.expectEnd("array"); err != nil {
			return nil, err
		}
		v = items
	default:
		raw, err := d.text(name)
		if err != nil {
			return nil, err
		}
		v, err = scalar(name, raw)
		if err != nil {
			return nil, err
		}
	}
	if err := d.expectEnd("value"); err != nil {
		return nil, err
	}
	return v, nil
}

func scalar(kind, raw string) (any, error) {
	switch kind {
	case "string":
		return raw, nil
	case "int", "i4", "i8":
		n, err := strconv.ParseInt(strings.TrimSpace(raw), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("<%s>%s</%s> is not an integer", kind, truncate(raw), kind)
		}
		return n, nil
	case "boolean":
		switch strings.TrimSpace(raw) {
		case "1":
			return true, nil
		case "0":
			return false, nil
		}
		return nil, fmt.Errorf("<boolean>%s</boolean> is not 0 or 1", truncate(raw))
	case "double":
		f, err := strconv.ParseFloat(strings.TrimSpace(raw), 64)
		if err != nil {
			return nil, fmt.Errorf("<double>%s</double> is not a number", truncate(raw))
		}
		return f, nil
	case "base64":
		b, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(raw), ""))
		if err != nil {
			return nil, fmt.Errorf("<base64> is not base64: %w", err)
		}
		return b, nil
	case "dateTime.iso8601":
		return strings.TrimSpace(raw), nil
	}
	return nil, fmt.Errorf("unknown XML-RPC type <%s>", kind)
}

// DecodeCall reads a methodCall.
func DecodeCall(r io.Reader) (method string, params []any, err error) {
	d := newDecoder(r)
	if err := d.expectStart("methodCall"); err != nil {
		return "", nil, fmt.Errorf("xmlrpc call: %w", err)
	}
	if err := d.expectStart("methodName"); err != nil {
		return "", nil, fmt.Errorf("xmlrpc call: %w", err)
	}
	if method, err = d.text("methodName"); err != nil {
		return "", nil, fmt.Errorf("xmlrpc call: %w", err)
	}
	method = strings.TrimSpace(method)
	tok, err := d.next()
	if err != nil {
		return "", nil, fmt.Errorf("xmlrpc call %s: %w", method, err)
	}
	if e, ok := tok.(xml.EndElement); ok && e.Name.Local == "methodCall" {
		return method, nil, nil
	}
	if s, ok := tok.(xml.StartElement); !ok || s.Name.Local != "params" {
		return "", nil, fmt.Errorf("xmlrpc call %s: want <params>, got %s", method, describe(tok))
	}
	params = []any{}
	for {
		tok, err := d.next()
		if err != nil {
			return "", nil, fmt.Errorf("xmlrpc call %s: %w", method, err)
		}
		if e, ok := tok.(xml.EndElement); ok && e.Name.Local == "params" {
			break
		}
		if s, ok := tok.(xml.StartElement); !ok || s.Name.Local != "param" {
			return "", nil, fmt.Errorf("xmlrpc call %s: want <param>, got %s", method, describe(tok))
		}
		if err := d.expectStart("value"); err != nil {
			return "", nil, fmt.Errorf("xmlrpc call %s param %d: %w", method, len(params)+1, err)
		}
		v, err := d.value(0)
		if err != nil {
			return "", nil, fmt.Errorf("xmlrpc call %s param %d: %w", method, len(params)+1, err)
		}
		params = append(params, v)
		if err := d.expectEnd("param"); err != nil {
			return "", nil, fmt.Errorf("xmlrpc call %s: %w", method, err)
		}
	}
	if err := d.expectEnd("methodCall"); err != nil {
		return "", nil, fmt.Errorf("xmlrpc call %s: %w", method, err)
	}
	return method, params, nil
}

// DecodeResponse reads a methodResponse. A fault comes back as a *Fault error.
func DecodeResponse(r io.Reader) (any, error) {
	d := newDecoder(r)
	if err := d.expectStart("methodResponse"); err != nil {
		return nil, fmt.Errorf("xmlrpc response: %w", err)
	}
	tok, err := d.next()
	if err != nil {
		return nil, fmt.Errorf("xmlrpc response: %w", err)
	}
	s, ok := tok.(xml.StartElement)
	if !ok {
		return nil, fmt.Errorf("xmlrpc response: want <params> or <fault>, got %s", describe(tok))
	}
	switch s.Name.Local {
	case "fault":
		if err := d.expectStart("value"); err != nil {
			return nil, fmt.Errorf("xmlrpc fault: %w", err)
		}
		v, err := d.value(0)
		if err != nil {
			return nil, fmt.Errorf("xmlrpc fault: %w", err)
		}
		m, _ := v.(map[string]any)
		code, _ := m["faultCode"].(int64)
		msg, _ := m["faultString"].(string)
		if m == nil {
			return nil, errors.New("xmlrpc fault: value is not a struct")
		}
		return nil, &Fault{Code: int(code), String: msg}
	case "params":
		if err := d.expectStart("param"); err != nil {
			return nil, fmt.Errorf("xmlrpc response: %w", err)
		}
		if err := d.expectStart("value"); err != nil {
			return nil, fmt.Errorf("xmlrpc response: %w", err)
		}
		v, err := d.value(0)
		if err != nil {
			return nil, fmt.Errorf("xmlrpc response: %w", err)
		}
		if err := d.expectEnd("param"); err != nil {
			return nil, fmt.Errorf("xmlrpc response: %w", err)
		}
		return v, nil
	}
	return nil, fmt.Errorf("xmlrpc response: want <params> or <fault>, got <%s>", s.Name.Local)
}
