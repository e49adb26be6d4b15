package koji

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const pyboth = "../fixtures/rpms/pyboth-2.0-1.fc40/pyboth-2.0-1.fc40.noarch.rpm"

func TestReadRPM(t *testing.T) {
	h, err := VerifyRPM(pyboth, "")
	if err != nil {
		t.Fatal(err)
	}
	if h.NVRA() != "pyboth-2.0-1.fc40.noarch" || h.Epoch == nil || *h.Epoch != 1 || h.Source {
		t.Errorf("header = %+v", h)
	}
	// rpm itself must read the same SIGMD5 (Koji's payloadhash).
	out, err := exec.Command("rpm", "-qp", "--qf", "%{SIGMD5}", pyboth).Output()
	if err != nil {
		t.Fatalf("rpm -qp (apt-get install rpm): %v", err)
	}
	if h.SigMD5 != strings.TrimSpace(string(out)) {
		t.Errorf("SigMD5 = %s, rpm says %s", h.SigMD5, out)
	}
	if !slices.Contains(h.Requires, "python(abi)") || !slices.Contains(h.Requires, "/usr/bin/python2") {
		t.Errorf("requires = %v", h.Requires)
	}
	src, err := ReadRPM("../fixtures/rpms/pyboth-2.0-1.fc40/pyboth-2.0-1.fc40.src.rpm")
	if err != nil || !src.Source || src.Arch != "src" {
		t.Errorf("source RPM = %+v, %v", src, err)
	}
}

func TestVerifyRPMCorrupt(t *testing.T) {
	raw, err := os.ReadFile(pyboth)
	if err != nil {
		t.Fatal(err)
	}
	raw[len(raw)-10] ^= 0xff
	p := filepath.Join(t.TempDir(), "x.rpm")
	os.WriteFile(p, raw, 0o644)
	var ce *ChecksumError
	if _, err := VerifyRPM(p, ""); !errors.As(err, &ce) {
		t.Fatalf("a flipped payload byte gave %v, want a ChecksumError", err)
	}
	os.WriteFile(p, []byte("<html>404</html>"), 0o644)
	if _, err := VerifyRPM(p, "x"); err == nil {
		t.Fatal("an HTML page passed as an RPM")
	}
}

func FuzzParseRPM(f *testing.F) {
	raw, err := os.ReadFile(pyboth)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(raw[:2048])
	f.Fuzz(func(t *testing.T, b []byte) {
		ParseRPM(bytes.NewReader(b), true)
	})
}
