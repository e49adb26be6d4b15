package xmlrpc

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestCallRoundTrip(t *testing.T) {
	params := []any{
		"xchat-0.5-1.fc20", int64(42), int64(1) << 40, true, nil, 1.5, []byte{0, 1, 2},
		[]any{"a", int64(1)}, map[string]any{"latest": true, "__starstar": true, "name": "<&>"},
	}
	var buf bytes.Buffer
	if err := EncodeCall(&buf, "listTagged", params); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "<i8>1099511627776</i8>") {
		t.Errorf("a 64-bit value must go out as <i8>: %s", buf.String())
	}
	method, got, err := DecodeCall(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if method != "listTagged" || !reflect.DeepEqual(got, params) {
		t.Errorf("got %s %#v\nwant %#v", method, got, params)
	}
}

// A response as Koji's hub (Python's xmlrpc.client with allow_none) writes
// it: untyped strings, <nil/>, indentation.
const kojiResponse = `<?xml version='1.0'?>
<methodResponse>
<params>
<param>
<value><struct>
<member>
<name>id</name>
<value><int>2368398</int></value>
</member>
<member>
<name>nvr</name>
<value><string>xchat-0.5-1.fc20</string></value>
</member>
<member>
<name>epoch</name>
<value><nil/></value></member>
<member>
<name>volume_name</name>
<value>DEFAULT</value>
</member>
<member>
<name>extra</name>
<value><array><data>
</data></array></value>
</member>
</struct></value>
</param>
</params>
</methodResponse>
`

func TestDecodeKojiResponse(t *testing.T) {
	v, err := DecodeResponse(strings.NewReader(kojiResponse))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"id": int64(2368398), "nvr": "xchat-0.5-1.fc20", "epoch": nil, "volume_name": "DEFAULT", "extra": []any{}}
	if !reflect.DeepEqual(v, want) {
		t.Errorf("got %#v\nwant %#v", v, want)
	}
}

func TestFault(t *testing.T) {
	var buf bytes.Buffer
	if err := EncodeFault(&buf, &Fault{Code: 1000, String: "koji.GenericError: No such build"}); err != nil {
		t.Fatal(err)
	}
	_, err := DecodeResponse(&buf)
	var f *Fault
	if !errors.As(err, &f) || f.Code != 1000 || f.String != "koji.GenericError: No such build" {
		t.Fatalf("got %v, want the fault back", err)
	}
}

func TestDecodeErrors(t *testing.T) {
	for in, want := range map[string]string{
		"":                             "unexpected EOF",
		"<html>502 Bad Gateway</html>": "want <methodResponse>, got <html>",
		"<methodResponse><params><param><value><int>x</int></value></param></params></methodResponse>":            "<int>x</int> is not an integer",
		"<methodResponse><params><param><value><date>1</date></value></param></params></methodResponse>":          "unknown XML-RPC type <date>",
		"<methodResponse><params><param><value><struct><foo/></struct></value></param></params></methodResponse>": "want <member> in <struct>",
	} {
		_, err := DecodeResponse(strings.NewReader(in))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("DecodeResponse(%q) = %v, want an error with %q", in, err, want)
		}
	}
}

func TestEncodeRejects(t *testing.T) {
	if err := EncodeResponse(&bytes.Buffer{}, struct{}{}); err == nil {
		t.Error("a struct value was encoded")
	}
}

func FuzzDecodeResponse(f *testing.F) {
	f.Add(kojiResponse)
	f.Fuzz(func(t *testing.T, s string) {
		v, err := DecodeResponse(strings.NewReader(s))
		if err != nil {
			return
		}
		var buf bytes.Buffer
		if err := EncodeResponse(&buf, v); err != nil {
			t.Fatalf("decoded %#v but cannot encode it: %v", v, err)
		}
		back, err := DecodeResponse(&buf)
		if err != nil || !reflect.DeepEqual(back, v) {
			t.Fatalf("round trip of %#v gave %#v, %v", v, back, err)
		}
	})
}

func FuzzDecodeCall(f *testing.F) {
	f.Add(`<?xml version="1.0"?><methodCall><methodName>getBuild</methodName><params><param><value><string>x-1-1</string></value></param></params></methodCall>`)
	f.Fuzz(func(t *testing.T, s string) {
		method, params, err := DecodeCall(strings.NewReader(s))
		if err != nil {
			return
		}
		var buf bytes.Buffer
		if err := EncodeCall(&buf, method, params); err != nil {
			t.Fatalf("cannot re-encode %s %#v: %v", method, params, err)
		}
	})
}

// BenchmarkDecodeListRPMs decodes a listRPMs answer of 200 RPMs, the size
// of a large build: decoding must not be what a download waits on.
func BenchmarkDecodeListRPMs(b *testing.B) {
	items := make([]any, 200)
	for i := range items {
		items[i] = map[string]any{"id": int64(i), "name": "pkg-sub", "version": "1.0", "release": "1.fc40", "arch": "x86_64",
			"epoch": nil, "size": int64(123456), "payloadhash": "0123456789abcdef0123456789abcdef", "build_id": int64(7)}
	}
	var buf bytes.Buffer
	if err := EncodeResponse(&buf, items); err != nil {
		b.Fatal(err)
	}
	raw := buf.Bytes()
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		if _, err := DecodeResponse(bytes.NewReader(raw)); err != nil {
			b.Fatal(err)
		}
	}
}
