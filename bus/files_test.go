package bus

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func readAll(t *testing.T, s *FileSource) []Delivery {
	t.Helper()
	var out []Delivery
	for {
		d, err := s.Next(context.Background())
		if errors.Is(err, ErrDrained) {
			return out
		}
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		out = append(out, d)
	}
}

func TestFileSourceReadsTheWholeCorpus(t *testing.T) {
	dir := "../testdata/messages"
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("corpus: %v", err)
	}
	want := 0
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".json") {
			want++
		}
	}
	s, err := OpenFiles(nil, dir)
	if err != nil {
		t.Fatal(err)
	}
	got := readAll(t, s)
	if len(got) != want {
		t.Fatalf("read %d messages, corpus has %d files", len(got), want)
	}
	ids := map[string]string{}
	for _, d := range got {
		if d.Err != nil {
			t.Errorf("%s: %v", d.Origin, d.Err)
			continue
		}
		if d.Message.Topic == "" || d.Message.Body == nil || d.Message.ID == "" {
			t.Errorf("%s: topic %q, id %q, body %v", d.Origin, d.Message.Topic, d.Message.ID, d.Message.Body != nil)
		}
		if env, ok := d.Message.Extra["fedmsg_envelope"].(map[string]any); ok && env["msg_id"] != nil {
			continue // fixture variants of one message share their envelope's id
		}
		if prev, dup := ids[d.Message.ID]; dup {
			t.Errorf("%s and %s share id %s", prev, d.Origin, d.Message.ID)
		}
		ids[d.Message.ID] = d.Origin
	}
	// fedmsg-era samples keep their envelope's msg_id.
	s2, _ := OpenFiles(nil, filepath.Join(dir, "koji-build-state-change__1.json"))
	d := readAll(t, s2)[0]
	env := d.Message.Extra["fedmsg_envelope"].(map[string]any)
	if d.Message.ID != env["msg_id"] {
		t.Errorf("id %q, envelope msg_id %v", d.Message.ID, env["msg_id"])
	}
}

func TestFileSourceJSONLinesKeepsGoingPastABadLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "msgs.jsonl")
	content := `{"id":"a","topic":"t.one","body":{"x":1}}

not json at all
{"topic":"t.three","body":{"x":3}}
{"id":"d","topic":"t.four","body":"a string"}
`
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	s, _ := OpenFiles(nil, path)
	var rejected []string
	s.OnReject = func(origin string, raw []byte, reason string) error {
		rejected = append(rejected, origin+" "+reason)
		return nil
	}
	got := readAll(t, s)
	if len(got) != 4 {
		t.Fatalf("got %d deliveries, want 4", len(got))
	}
	if got[0].Err != nil || got[0].Message.ID != "a" {
		t.Errorf("first: %+v", got[0])
	}
	if got[1].Err == nil || !strings.Contains(got[1].Err.Error(), "msgs.jsonl:3") {
		t.Errorf("bad line error should name file and line: %v", got[1].Err)
	}
	if got[2].Err != nil || got[2].Message.ID == "" {
		t.Errorf("third should get a derived id: %+v", got[2])
	}
	if got[3].Err == nil || !strings.Contains(got[3].Err.Error(), "msgs.jsonl:5") {
		t.Errorf("string body should be an error naming line 5: %v", got[3].Err)
	}
	got[1].Reject(got[1].Err.Error())
	if len(rejected) != 1 || !strings.HasPrefix(rejected[0], path+":3 ") {
		t.Errorf("rejected: %q", rejected)
	}
}

func TestFileSourceStdinAndDatagrepperShape(t *testing.T) {
	in := `{"msg_id": "2016-abc", "topic": "org.fedoraproject.prod.buildsys.tag",
	  "msg": {"tag": "f24-updates-pending", "name": "x"}}`
	s, _ := OpenFiles(strings.NewReader(in), "-")
	got := readAll(t, s)
	if len(got) != 1 || got[0].Err != nil {
		t.Fatalf("got %+v", got)
	}
	m := got[0].Message
	if m.ID != "2016-abc" || m.Body["tag"] != "f24-updates-pending" {
		t.Errorf("message %+v", m)
	}
}

func TestDerivedIDIsStable(t *testing.T) {
	raw := []byte(`{"topic":"t","body":{"b":2,"a":1}}`)
	a, _ := DecodeMessage(raw)
	b, _ := DecodeMessage([]byte(`{"body":{"a":1,"b":2},"topic":"t"}`))
	c, _ := DecodeMessage([]byte(`{"body":{"a":1,"b":3},"topic":"t"}`))
	if a.ID != b.ID || a.ID == c.ID || len(a.ID) != 36 {
		t.Errorf("ids %q %q %q", a.ID, b.ID, c.ID)
	}
}

func TestOpenFilesNamesAMissingPath(t *testing.T) {
	_, err := OpenFiles(nil, "/no/such/messages")
	if err == nil || !strings.Contains(err.Error(), "/no/such/messages") {
		t.Fatalf("err = %v", err)
	}
}

func TestWrongTypesNameTheKey(t *testing.T) {
	_, err := DecodeMessage([]byte(`{"topic": 5, "body": {}}`))
	if err == nil || !strings.Contains(err.Error(), `key "topic": want a string, got number`) || strings.Contains(err.Error(), "plain") {
		t.Errorf("err = %v", err)
	}
	_, err = DecodeMessage([]byte(`{"topic": "t", "body": {`))
	if err == nil || !strings.Contains(err.Error(), "not a JSON object") {
		t.Errorf("truncated: err = %v", err)
	}
}

// A message file or standard input without end (/dev/zero) is one error
// naming it and the limit, not all memory.
func TestFileSourceCapsWhatItReads(t *testing.T) {
	zero, err := os.Open("/dev/zero")
	if err != nil {
		t.Fatal(err)
	}
	defer zero.Close()
	// The file itself is read the same way: cmd/taskotron's trigger test
	// gives it /dev/zero.
	for _, c := range []struct{ path, want string }{
		{"-", "reading messages from stdin: larger than 64 MiB"},
	} {
		s, err := OpenFiles(zero, c.path)
		if err != nil {
			t.Fatal(err)
		}
		_, err = s.Next(context.Background())
		if !errors.Is(err, ErrTooLarge) || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want %q…", c.path, err, c.want)
		}
	}
	// A regular file over the cap is refused from its size, unread.
	big := filepath.Join(t.TempDir(), "big.json")
	f, err := os.Create(big)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(MaxInput + 1); err != nil {
		t.Fatal(err)
	}
	f.Close()
	f, _ = os.Open(big)
	defer f.Close()
	if _, err := ReadAllCapped(f); !errors.Is(err, ErrTooLarge) {
		t.Errorf("sparse file over the cap: %v", err)
	}
	if off, _ := f.Seek(0, io.SeekCurrent); off != 0 {
		t.Errorf("read %d bytes of a file it could refuse from its size", off)
	}
	data, err := ReadAllCapped(strings.NewReader("{}"))
	if err != nil || string(data) != "{}" {
		t.Errorf("small input: %q %v", data, err)
	}
}
