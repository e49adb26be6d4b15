package koji

import (
	"bytes"
	"crypto/md5"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
)

// RPMHeader is what taskotron reads from an RPM file's headers.
type RPMHeader struct {
	Name, Version, Release, Arch string
	Epoch                        *int64
	// Source tells a source package (arch "src") from a binary one.
	Source bool
	// SigMD5 is the signature header's MD5 of header+payload, in hex: what
	// Koji stores as the RPM's payloadhash.
	SigMD5   string
	Requires []string
}

// NVRA is name-version-release.arch, the file name stem Koji uses.
func (h RPMHeader) NVRA() string { return h.Name + "-" + h.Version + "-" + h.Release + "." + h.Arch }

// Header tags (rpmtag.h) and signature tags (rpmsigtag).
const (
	tagName        = 1000
	tagVersion     = 1001
	tagRelease     = 1002
	tagEpoch       = 1003
	tagArch        = 1022
	tagSourceRPM   = 1044
	tagRequireName = 1049
	sigTagMD5      = 1004

	leadSize   = 96
	maxEntries = 1 << 16
	maxStore   = 64 << 20
)

var (
	leadMagic   = []byte{0xed, 0xab, 0xee, 0xdb}
	headerMagic = []byte{0x8e, 0xad, 0xe8, 0x01}
)

type indexEntry struct{ Tag, Type, Offset, Count uint32 }

type header struct {
	entries map[uint32]indexEntry
	store   []byte
}

// readHeader reads one header structure (index + data store) from r and
// returns it with its size in bytes.
func readHeader(r io.Reader) (*header, int64, error) {
	var intro [16]byte
	if _, err := io.ReadFull(r, intro[:]); err != nil {
		return nil, 0, fmt.Errorf("header intro: %w", err)
	}
	if !bytes.Equal(intro[:4], headerMagic) {
		return nil, 0, errors.New("bad header magic")
	}
	n := binary.BigEndian.Uint32(intro[8:12])
	size := binary.BigEndian.Uint32(intro[12:16])
	if n > maxEntries || size > maxStore {
		return nil, 0, fmt.Errorf("header too large (%d entries, %d bytes)", n, size)
	}
	h := &header{entries: make(map[uint32]indexEntry, n)}
	idx := make([]byte, 16*int(n))
	if _, err := io.ReadFull(r, idx); err != nil {
		return nil, 0, fmt.Errorf("header index: %w", err)
	}
	for i := 0; i < int(n); i++ {
		e := indexEntry{
			Tag:    binary.BigEndian.Uint32(idx[16*i:]),
			Type:   binary.BigEndian.Uint32(idx[16*i+4:]),
			Offset: binary.BigEndian.Uint32(idx[16*i+8:]),
			Count:  binary.BigEndian.Uint32(idx[16*i+12:]),
		}
		h.entries[e.Tag] = e
	}
	h.store = make([]byte, size)
	if _, err := io.ReadFull(r, h.store); err != nil {
		return nil, 0, fmt.Errorf("header store: %w", err)
	}
	return h, 16 + 16*int64(n) + int64(size), nil
}

func (h *header) strings(tag uint32) []string {
	e, ok := h.entries[tag]
	if !ok || (e.Type != 6 && e.Type != 8 && e.Type != 9) || int(e.Offset) >= len(h.store) {
		return nil
	}
	var out []string
	rest := h.store[e.Offset:]
	for i := uint32(0); i < e.Count && len(rest) > 0; i++ {
		end := bytes.IndexByte(rest, 0)
		if end < 0 {
			break
		}
		out = append(out, string(rest[:end]))
		rest = rest[end+1:]
		if e.Type == 6 {
			break
		}
	}
	return out
}

func (h *header) str(tag uint32) string {
	if s := h.strings(tag); len(s) > 0 {
		return s[0]
	}
	return ""
}

func (h *header) int32(tag uint32) *int64 {
	e, ok := h.entries[tag]
	if !ok || e.Type != 4 || e.Count < 1 || int(e.Offset)+4 > len(h.store) {
		return nil
	}
	v := int64(int32(binary.BigEndian.Uint32(h.store[e.Offset:])))
	return &v
}

func (h *header) bin(tag uint32) []byte {
	e, ok := h.entries[tag]
	if !ok || e.Type != 7 || uint64(e.Offset)+uint64(e.Count) > uint64(len(h.store)) {
		return nil
	}
	return h.store[e.Offset : e.Offset+e.Count]
}

// ParseRPM reads the lead, signature and main headers of an RPM from r.
// With hashRest it also returns the MD5 of everything after the signature
// header (header+payload), which must equal SigMD5 for an intact file.
func ParseRPM(r io.Reader, hashRest bool) (RPMHeader, string, error) {
	var h RPMHeader
	lead := make([]byte, leadSize)
	if _, err := io.ReadFull(r, lead); err != nil {
		return h, "", fmt.Errorf("not an RPM: lead: %w", err)
	}
	if !bytes.Equal(lead[:4], leadMagic) {
		return h, "", errors.New("not an RPM: bad lead magic")
	}
	sig, sigSize, err := readHeader(r)
	if err != nil {
		return h, "", fmt.Errorf("signature %w", err)
	}
	// The signature header is padded to a multiple of 8 bytes.
	if pad := (8 - sigSize%8) % 8; pad > 0 {
		if _, err := io.CopyN(io.Discard, r, pad); err != nil {
			return h, "", fmt.Errorf("signature padding: %w", err)
		}
	}
	if sum := sig.bin(sigTagMD5); len(sum) == 16 {
		h.SigMD5 = hex.EncodeToString(sum)
	}
	var md = md5.New()
	var body io.Reader = r
	if hashRest {
		body = io.TeeReader(r, md)
	}
	main, _, err := readHeader(body)
	if err != nil {
		return h, "", fmt.Errorf("main %w", err)
	}
	h.Name, h.Version, h.Release = main.str(tagName), main.str(tagVersion), main.str(tagRelease)
	h.Arch, h.Epoch = main.str(tagArch), main.int32(tagEpoch)
	h.Requires = main.strings(tagRequireName)
	h.Source = binary.BigEndian.Uint16(lead[6:8]) == 1 || main.str(tagSourceRPM) == ""
	if h.Source {
		h.Arch = "src"
	}
	if h.Name == "" || h.Version == "" || h.Release == "" {
		return h, "", errors.New("RPM header lacks name, version or release")
	}
	if !hashRest {
		return h, "", nil
	}
	if _, err := io.Copy(md, r); err != nil {
		return h, "", fmt.Errorf("payload: %w", err)
	}
	return h, hex.EncodeToString(md.Sum(nil)), nil
}

// ReadRPM reads an RPM file's headers.
func ReadRPM(path string) (RPMHeader, error) {
	f, err := os.Open(path)
	if err != nil {
		return RPMHeader{}, err
	}
	defer f.Close()
	h, _, err := ParseRPM(f, false)
	if err != nil {
		return h, fmt.Errorf("%s: %w", path, err)
	}
	return h, nil
}

// VerifyRPM checks that the file at path is an intact RPM whose
// header+payload MD5 is want (Koji's payloadhash), and returns its headers.
func VerifyRPM(path, want string) (RPMHeader, error) {
	f, err := os.Open(path)
	if err != nil {
		return RPMHeader{}, err
	}
	defer f.Close()
	h, sum, err := ParseRPM(f, true)
	if err != nil {
		return h, fmt.Errorf("%s: %w", path, err)
	}
	if want != "" && sum != want {
		return h, &ChecksumError{Path: path, Want: want, Got: sum}
	}
	if h.SigMD5 != "" && sum != h.SigMD5 {
		return h, &ChecksumError{Path: path, Want: h.SigMD5, Got: sum}
	}
	return h, nil
}

// ChecksumError says a downloaded file is not what Koji described.
type ChecksumError struct{ Path, Want, Got string }

func (e *ChecksumError) Error() string {
	return fmt.Sprintf("%s: checksum mismatch: header+payload MD5 is %s, Koji says %s", e.Path, e.Got, e.Want)
}
