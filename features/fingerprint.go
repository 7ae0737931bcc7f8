package features

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"strings"
	"sync"

	"github.com/vigil-fraud/vigil/engine/event"
)

// A derived device fingerprint identifies a device when the event has
// attributes but no fingerprint of the integrator's. It is a keyed hash
// (HMAC-SHA-256 with Options.FingerprintKey, truncated to 128 bits,
// written "fp1_" + 32 hex digits) of these normalized attributes:
//
//   - device.user_agent: lower-cased, runs of spaces collapsed, version
//     numbers cut to their major part (Chrome/120.0.6099.109 → chrome/120),
//     so that a browser update does not make a new device;
//   - device.language: the first language tag, lower-cased (en-us);
//   - device.timezone: trimmed, lower-cased;
//   - device.screen: lower-cased, spaces removed, * and × written x;
//   - device.platform: trimmed, lower-cased.
//
// The user agent and at least two of the other four are required;
// otherwise there is no derived fingerprint. device.ip and device.id are
// not part of it: an address changes with the network, and an id is the
// integrator's own identifier.
type fingerprinter struct {
	pool sync.Pool
}

// FingerprintPrefix starts every derived fingerprint.
const FingerprintPrefix = "fp1_"

func newFingerprinter(key []byte) *fingerprinter {
	k := append([]byte(nil), key...)
	f := &fingerprinter{}
	f.pool.New = func() any { return &fpScratch{mac: hmac.New(sha256.New, k), buf: make([]byte, 0, 256)} }
	return f
}

type fpScratch struct {
	mac hash.Hash
	buf []byte
	sum [sha256.Size]byte
}

// derive computes the fingerprint digest of d; ok false when d has too few
// attributes.
func (f *fingerprinter) derive(d *event.Device, out *[16]byte) bool {
	if strings.TrimSpace(d.UserAgent) == "" {
		return false
	}
	n := 0
	for _, s := range []string{d.Language, d.Timezone, d.Screen, d.Platform} {
		if strings.TrimSpace(s) != "" {
			n++
		}
	}
	if n < 2 {
		return false
	}
	s := f.pool.Get().(*fpScratch)
	b := append(s.buf[:0], "v1"...)
	b = append(b, 0)
	b = normUserAgent(b, d.UserAgent)
	b = append(b, 0)
	b = normLanguage(b, d.Language)
	b = append(b, 0)
	b = normLower(b, d.Timezone, false)
	b = append(b, 0)
	b = normLower(b, d.Screen, true)
	b = append(b, 0)
	b = normLower(b, d.Platform, false)
	s.mac.Reset()
	s.mac.Write(b)
	copy(out[:], s.mac.Sum(s.sum[:0]))
	s.buf = b[:0]
	f.pool.Put(s)
	return true
}

// fingerprintString formats a digest as a derived fingerprint.
func fingerprintString(d *[16]byte) string {
	var b [len(FingerprintPrefix) + 32]byte
	formatFingerprint(&b, d)
	return string(b[:])
}

func formatFingerprint(b *[len(FingerprintPrefix) + 32]byte, d *[16]byte) {
	copy(b[:], FingerprintPrefix)
	hex.Encode(b[len(FingerprintPrefix):], d[:])
}

func lower(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func normUserAgent(b []byte, s string) []byte {
	s = strings.TrimSpace(s)
	space := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == ' ' || c == '\t' {
			space = true
			continue
		}
		if space {
			b = append(b, ' ')
			space = false
		}
		// Drop the minor parts of a version number: digits, then .digits...
		if c == '.' && i > 0 && isDigit(s[i-1]) && i+1 < len(s) && isDigit(s[i+1]) {
			for i+1 < len(s) && (isDigit(s[i+1]) || s[i+1] == '.') {
				i++
			}
			continue
		}
		b = append(b, lower(c))
	}
	return b
}

func normLanguage(b []byte, s string) []byte {
	if i := strings.IndexAny(s, ",;"); i >= 0 {
		s = s[:i]
	}
	return normLower(b, s, false)
}

func normLower(b []byte, s string, screen bool) []byte {
	s = strings.TrimSpace(s)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if screen {
			switch {
			case c == ' ':
				continue
			case c == '*':
				c = 'x'
			case strings.HasPrefix(s[i:], "×"):
				i += len("×") - 1
				c = 'x'
			}
		}
		b = append(b, lower(c))
	}
	return b
}
