package event

import (
	"math/bits"
	"strings"
	"unicode"
	"unicode/utf8"
)

// A PAN (primary account number) is 13 to 19 digits, passes the Luhn check
// and starts with a card network's prefix. vigil refuses any event value that
// contains one, with single spaces or dashes allowed between digit groups, so
// that raw card numbers never reach its state, logs or signals. Digits of
// any script (full-width ４１１１, Arabic-Indic, ...) count as digits, and
// any Unicode space (a no-break space) or dash (an en dash) as a separator:
// a number pasted from a formatted document is caught too. Dots and
// slashes do not separate groups (decimal numbers and dates would match).
//
// Trade-off: any numeric identifier that happens to look like a PAN (about
// one random 16-digit number in ten with a network prefix passes Luhn) is
// refused too. Integrators avoid it by sending identifiers that are not pure
// digits (a prefix such as "ord_"), or are shorter than 13 digits.

const (
	panMinDigits = 13
	panMaxDigits = 19
)

// ContainsPAN reports whether s contains a run of digits that looks like a
// card number. Digit groups separated by one space or dash are joined, and
// every contiguous sequence of whole groups is tried, so "order 12 4111 1111
// 1111 1111" is caught as well as "4111111111111111"; a single group longer
// than 19 digits is a number, not a card.
func ContainsPAN(s string) bool {
	// Fast path: most values have fewer than 13 digits in total (a PAN
	// takes at least a byte a digit, in any script).
	if len(s) < panMinDigits {
		return false
	}
	n, ascii := countDigits(s)
	if !ascii {
		s = asciiDigits(s)
		n, _ = countDigits(s)
	}
	if n < panMinDigits {
		return false
	}
	// The groups of the current run as [start, end) offsets in s, a ring
	// of the newest ones: a PAN spans at most panMaxDigits groups.
	var gs, ge [32]int
	n, last := 0, -1
	for i := 0; i < len(s); {
		if !isDigit(s[i]) {
			i++
			continue
		}
		j := i + 1
		for j < len(s) && isDigit(s[j]) {
			j++
		}
		// The run goes on when one separator joins this group to the last.
		if n == 0 || ge[last] != i-1 || (s[i-1] != ' ' && s[i-1] != '-') {
			n = 0
		}
		last = (last + 1) % len(gs)
		gs[last], ge[last] = i, j
		n = min(n+1, len(gs))
		if endsWithPAN(s, &gs, &ge, last, n) {
			return true
		}
		i = j
	}
	return false
}

// endsWithPAN tries every sequence of the run's groups that ends with the
// newest one (ring index last, n groups in the run).
func endsWithPAN(s string, gs, ge *[32]int, last, n int) bool {
	total := 0
	for k := 0; k < n; k++ {
		g := (last - k + len(gs)) % len(gs)
		total += ge[g] - gs[g]
		if total > panMaxDigits {
			return false
		}
		if total < panMinDigits {
			continue
		}
		var d [panMaxDigits]byte
		m := 0
		for h := 0; h <= k; h++ {
			x := (g + h) % len(gs)
			m += copy(d[m:], s[gs[x]:ge[x]])
		}
		if IsPAN(d[:m]) {
			return true
		}
	}
	return false
}

// IsPAN reports whether digits (ASCII digits only) is a plausible card
// number: right length, Luhn-valid and a known network prefix.
func IsPAN(digits []byte) bool {
	if len(digits) < panMinDigits || len(digits) > panMaxDigits {
		return false
	}
	return hasNetworkPrefix(digits) && luhn(digits)
}

func luhn(d []byte) bool {
	sum := 0
	double := false
	for i := len(d) - 1; i >= 0; i-- {
		v := int(d[i] - '0')
		if double {
			v *= 2
			if v > 9 {
				v -= 9
			}
		}
		sum += v
		double = !double
	}
	return sum%10 == 0
}

// hasNetworkPrefix checks the issuer identification ranges of the major
// networks: Visa, Mastercard, American Express, Discover, JCB, Diners Club,
// UnionPay, Maestro, RuPay and Mir.
func hasNetworkPrefix(d []byte) bool {
	p := func(n int) int { // first n digits as a number
		v := 0
		for i := 0; i < n; i++ {
			v = v*10 + int(d[i]-'0')
		}
		return v
	}
	p2, p3, p4 := p(2), p(3), p(4)
	switch {
	case d[0] == '4': // Visa
		return true
	case p2 >= 51 && p2 <= 55, p4 >= 2221 && p4 <= 2720: // Mastercard
		return true
	case p2 == 34 || p2 == 37: // American Express
		return true
	case p4 == 6011, p3 >= 644 && p3 <= 649, p2 == 65: // Discover, RuPay
		return true
	case p4 >= 3528 && p4 <= 3589: // JCB
		return true
	case p3 >= 300 && p3 <= 305, p2 == 36, p2 == 38, p2 == 39: // Diners Club
		return true
	case p2 == 62, p2 == 60, p2 == 81, p2 == 82: // UnionPay, RuPay
		return true
	case p2 == 50, p2 >= 56 && p2 <= 69: // Maestro
		return true
	case p4 >= 2200 && p4 <= 2204: // Mir
		return true
	}
	return false
}

// countDigits counts the ASCII digits of s, eight bytes at a time, and
// says whether s is all ASCII.
func countDigits(s string) (n int, ascii bool) {
	const lo, hi = 0x0101010101010101, 0x8080808080808080
	var high uint64
	i := 0
	for ; i+8 <= len(s); i += 8 {
		w := uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
			uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56
		x := w &^ hi                                      // the low 7 bits of each byte: adding below never carries into the next byte
		geZero := x + lo*(0x80-'0')                       // high bit set where x >= '0'
		gtNine := x + lo*(0x80-'9'-1)                     // high bit set where x > '9'
		n += bits.OnesCount64(geZero &^ gtNine &^ w & hi) // and not above 0x7f
		high |= w & hi
	}
	for ; i < len(s); i++ {
		if isDigit(s[i]) {
			n++
		}
		high |= uint64(s[i] & 0x80)
	}
	return n, high == 0
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// asciiDigits maps s to ASCII for the PAN scan, a byte per rune: a decimal
// digit of any script to its ASCII digit, a Unicode space to ' ', a dash to
// '-', anything else non-ASCII to 'x'.
func asciiDigits(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		switch {
		case r < utf8.RuneSelf:
			b.WriteByte(byte(r))
		case unicode.IsDigit(r):
			b.WriteByte(byte('0' + digitValue(r)))
		case unicode.IsSpace(r), unicode.Is(unicode.Zs, r):
			b.WriteByte(' ')
		case unicode.Is(unicode.Pd, r), r == '\u2212': // dashes, the minus sign
			b.WriteByte('-')
		default:
			b.WriteByte('x')
		}
	}
	return b.String()
}

// digitValue is the value of a decimal digit (unicode.IsDigit): Unicode
// encodes each script's digits as a run of ten from zero, the runs of
// some scripts adjacent (the mathematical digits).
func digitValue(r rune) int {
	k := 0
	for unicode.IsDigit(r - rune(k) - 1) {
		k++
	}
	return k % 10
}
