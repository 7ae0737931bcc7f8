package rules

import "testing"

func TestEditDistance(t *testing.T) {
	f := func(a, b string, want int) {
		t.Helper()
		if got := editDistance(a, b); got != want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", a, b, got, want)
		}
		if got := editDistance(b, a); got != want {
			t.Errorf("editDistance(%q, %q) = %d, want %d (symmetric)", b, a, got, want)
		}
	}
	f("", "", 0)
	f("", "abc", 3)
	f("listen", "listen", 0)
	f("lisen", "listen", 1)  // a deletion
	f("listne", "listen", 1) // a swap of two adjacent letters
	f("enabeld", "enabled", 1)
	f("ab", "ba", 1)
	f("abc", "ca", 3) // optimal string alignment: no edit of a swapped pair
	f("kitten", "sitting", 3)
}

func TestSuggest(t *testing.T) {
	f := func(name string, cands []string, want string) {
		t.Helper()
		if got := Suggest(name, cands, ""); got != want {
			t.Errorf("Suggest(%q) = %q, want %q", name, got, want)
		}
	}
	f("listne", []string{"listen", "log"}, " (did you mean listen?)")
	f("card_count_1hr", []string{"card_count_1h", "card_count_24h"}, " (did you mean card_count_1h?)")
	f("xyz", []string{"listen"}, "")
}
