package event

import (
	"math/rand/v2"
	"strings"
	"testing"
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
		{"", false},
		{"tok_4f9a", false},
	} {
		if got := ContainsPAN(tc.in); got != tc.want {
			t.Errorf("ContainsPAN(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

// containsPANReference is ContainsPAN written the obvious way: every
// sequence of whole digit groups joined by single spaces or dashes.
func containsPANReference(s string) bool {
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
	pans := []string{"4111111111111111", "4111 1111 1111 1111", "3782-822463-10005", "5555555555554444", "6011111111111117"}
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
				b.WriteByte(" -- x/"[rng.IntN(6)])
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
	slow := func(s string) int {
		n := 0
		for i := 0; i < len(s); i++ {
			if s[i] >= '0' && s[i] <= '9' {
				n++
			}
		}
		return n
	}
	for _, base := range []string{"a1b2c3d4", "0000x9999/:;"} {
		for at := range len(base) {
			for c := range 256 {
				b := []byte(base)
				b[at] = byte(c)
				if got, want := countDigits(string(b)), slow(string(b)); got != want {
					t.Fatalf("countDigits(%q) = %d, want %d", b, got, want)
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
		if got, want := countDigits(string(b)), slow(string(b)); got != want {
			t.Fatalf("countDigits(%q) = %d, want %d", b, got, want)
		}
	}
}
