package event

import (
	"math/rand/v2"
	"strings"
	"testing"
	"unicode"
)

func TestContainsPAN(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want bool
	}{
		{"4111111111111111", true},
		{"4111 1111 1111 1111", true},
		{"4111-1111-1111-1111", true},
		{"card:4111111111111111;", true},
		{"ref 12 4111 1111 1111 1111", true}, // a sequence of groups inside a longer run
		{"378282246310005", true},            // Amex, 15 digits
		{"3782 822463 10005", true},          // Amex grouping
		{"6011111111111117", true},           // Discover
		{"5555555555554444", true},           // Mastercard
		{"2223003122003222", true},           // Mastercard 2-series
		{"3530111333300000", true},           // JCB
		{"6200000000000005", true},           // UnionPay
		{"4111111111111112", false},          // Luhn fails
		{"1234567812345670", false},          // Luhn ok, no network prefix
		{"41111111111", false},               // too short
		{"41111111111111111111111", false},   // one 23-digit number is not a card
		{"4111  1111 1111 1111", false},      // two spaces break a group sequence
		// a PAN after a long run of groups or digits (the scan used to
		// restart its 64-digit buffer in the middle of one)
		{strings.Repeat("0", 62) + " 4111111111111111", true},
		{strings.Repeat("1 ", 63) + "4111 1111 1111 1111", true},
		{strings.Repeat("0", 50) + "-4111-1111-1111-1111", true},
		{"ref " + strings.Repeat("1234567890", 7) + " 4111 1111 1111 1111", true},
		{strings.Repeat("4111111111111111", 2), false}, // one 32-digit group
		{"order 2026-11-22 12:00", false},
		// digits of other scripts, Unicode spaces and dashes
		{"４１１１１１１１１１１１１１１１", true},                                                                                 // full-width
		{"4111\u00a01111\u00a01111\u00a01111", true},                                                               // no-break spaces
		{"4111\u202f1111\u20091111\u20071111", true},                                                               // narrow, thin, figure spaces
		{"4111\u20131111\u20141111\u22121111", true},                                                               // en dash, em dash, minus
		{"\u0664\u0661\u0661\u0661\u0661\u0661\u0661\u0661\u0661\u0661\u0661\u0661\u0661\u0661\u0661\u0661", true}, // Arabic-Indic
		{"\U0001d7d2\U0001d7cf\U0001d7cf\U0001d7cf\U0001d7cf\U0001d7cf\U0001d7cf\U0001d7cf\U0001d7cf\U0001d7cf\U0001d7cf\U0001d7cf\U0001d7cf\U0001d7cf\U0001d7cf\U0001d7cf", true}, // mathematical bold
		{"４１１１１１１１１１１１１１１２", false},               // Luhn fails
		{"4111\u00a0\u00a01111 1111 1111", false}, // two separators
		{"4111.1111.1111.1111", false},            // dots do not separate groups
		{"café 4111 1111 1111 1111", true},        // non-ASCII elsewhere
		{"\xff4111111111111111", true},            // invalid UTF-8 elsewhere
		{"", false},
		{"tok_4f9a", false},
	} {
		if got := ContainsPAN(tc.in); got != tc.want {
			t.Errorf("ContainsPAN(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

// containsPANReference is ContainsPAN written the obvious way: every
// sequence of whole digit groups joined by single spaces or dashes, once
// the string is mapped to ASCII rune by rune.
func containsPANReference(s string) bool {
	var ascii []byte
	for _, r := range s {
		switch {
		case r < 0x80:
			ascii = append(ascii, byte(r))
		case unicode.IsDigit(r):
			ascii = append(ascii, byte('0'+digitValue(r)))
		case unicode.IsSpace(r) || unicode.Is(unicode.Zs, r):
			ascii = append(ascii, ' ')
		case unicode.Is(unicode.Pd, r) || r == '\u2212':
			ascii = append(ascii, '-')
		default:
			ascii = append(ascii, 'x')
		}
	}
	s = string(ascii)
	type group struct{ start, end int }
	var groups []group
	for i := 0; i < len(s); {
		if !isDigit(s[i]) {
			i++
			continue
		}
		j := i
		for j < len(s) && isDigit(s[j]) {
			j++
		}
		groups = append(groups, group{i, j})
		i = j
	}
	for a := range groups {
		digits := ""
		for b := a; b < len(groups); b++ {
			if b > a {
				sep := s[groups[b-1].end:groups[b].start]
				if sep != " " && sep != "-" {
					break
				}
			}
			digits += s[groups[b].start:groups[b].end]
			if IsPAN([]byte(digits)) {
				return true
			}
		}
	}
	return false
}

// TestContainsPANMatchesReference compares ContainsPAN with the reference
// on random strings of digits, separators and letters around real card
// numbers, short and long (past any buffer the scan might keep).
func TestContainsPANMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	pans := []string{"4111111111111111", "4111 1111 1111 1111", "3782-822463-10005", "5555555555554444", "6011111111111117",
		"４１１１\u00a01111\u20131111 1111"}
	for range 100_000 {
		var b strings.Builder
		for n := rng.IntN(12); n > 0; n-- {
			switch rng.IntN(8) {
			case 0:
				b.WriteString(pans[rng.IntN(len(pans))])
			case 1:
				b.WriteString(strings.Repeat(string(rune('0'+rng.IntN(10))), rng.IntN(70)))
			case 2, 3:
				for k := rng.IntN(8); k >= 0; k-- {
					b.WriteByte(byte('0' + rng.IntN(10)))
				}
			case 4, 5:
				b.WriteString([]string{" ", "-", "-", " x", "/", "\u00a0", "\u2013", "é", "４"}[rng.IntN(9)])
			default:
				b.WriteByte(byte('0' + rng.IntN(10)))
			}
		}
		s := b.String()
		if got, want := ContainsPAN(s), containsPANReference(s); got != want {
			t.Fatalf("ContainsPAN(%q) = %v, reference %v", s, got, want)
		}
	}
}

func FuzzContainsPAN(f *testing.F) {
	f.Add("ref 12 4111 1111 1111 1111")
	f.Add("４１１１\u00a01111\u20131111 1111")
	f.Add(strings.Repeat("0", 62) + " 4111111111111111")
	f.Add(strings.Repeat("1 ", 63) + "4111 1111 1111 1111")
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := ContainsPAN(s), containsPANReference(s); got != want {
			t.Fatalf("ContainsPAN(%q) = %v, reference %v", s, got, want)
		}
	})
}

// TestCountDigits checks the word-at-a-time digit count against counting
// byte by byte: every byte value at every position of an 8- and a 12-byte
// string, and random strings of every length to 40.
func TestCountDigits(t *testing.T) {
	type count struct {
		n     int
		ascii bool
	}
	slow := func(s string) count {
		c := count{ascii: true}
		for i := 0; i < len(s); i++ {
			if s[i] >= '0' && s[i] <= '9' {
				c.n++
			}
			if s[i] >= 0x80 {
				c.ascii = false
			}
		}
		return c
	}
	fast := func(s string) count {
		n, ascii := countDigits(s)
		return count{n, ascii}
	}
	for _, base := range []string{"a1b2c3d4", "0000x9999/:;"} {
		for at := range len(base) {
			for c := range 256 {
				b := []byte(base)
				b[at] = byte(c)
				if got, want := fast(string(b)), slow(string(b)); got != want {
					t.Fatalf("countDigits(%q) = %v, want %v", b, got, want)
				}
			}
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 20_000 {
		b := make([]byte, rng.IntN(41))
		for i := range b {
			b[i] = byte(rng.IntN(256))
			if rng.IntN(2) == 0 {
				b[i] = byte('/' + rng.IntN(12)) // around the digits
			}
		}
		if got, want := fast(string(b)), slow(string(b)); got != want {
			t.Fatalf("countDigits(%q) = %v, want %v", b, got, want)
		}
	}
}

// TestDigitValue: the value of digits of several scripts, including the
// adjacent runs of the mathematical digits.
func TestDigitValue(t *testing.T) {
	for r, want := range map[rune]int{'0': 0, '7': 7, '٠': 0, '٩': 9, '۴': 4, '०': 0, '९': 9, '０': 0, '９': 9,
		0x1D7CE: 0, 0x1D7D7: 9, 0x1D7D8: 0, 0x1D7E1: 9, 0x1D7F6: 0, 0x1D7FF: 9} {
		if got := digitValue(r); got != want {
			t.Errorf("digitValue(%U) = %d, want %d", r, got, want)
		}
	}
}
