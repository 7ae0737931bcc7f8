package rules

import (
	"crypto/sha256"
	"fmt"
	"strings"
	"testing"
)

// TestIterationBound: a rule whose nested closures would iterate too many
// times per transaction is refused when it compiles; one pass over a big
// list, or membership tests, are fine.
func TestIterationBound(t *testing.T) {
	var big []string
	for i := range 3000 {
		big = append(big, fmt.Sprintf("v%d", i))
	}
	lists := "lists:\n  big: [" + strings.Join(big, ", ") + "]\n"
	for _, tc := range []struct {
		when string
		ok   bool
	}{
		{`account.id in @big`, true},
		{`any(@big, {# == account.id})`, true},               // 3,000
		{`any(@big, {any(@big, {# == account.id})})`, false}, // 9,000,000
		{`any(1..400, {any(1..400, {# == amount})})`, false}, // 160,000
		{`any(1..300, {any(1..300, {# == amount})})`, true},  // 90,000
		{`count(filter(@big, {# != ""}), {any(@big, {true})}) > 1`, false},
		{`let l = @big; any(l, {any(l, {# == account.id})})`, false}, // through a let variable
	} {
		src := lists + fmt.Sprintf("rules:\n  - name: r\n    when: %q\n    action: step_up\n    score: 10\n    reason: R\n", tc.when)
		_, err := Compile([]Source{{Name: "t.yaml", Data: []byte(src)}}, contractSchema(t))
		if (err == nil) != tc.ok || (err != nil && !strings.Contains(err.Error(), "too costly")) {
			t.Errorf("%s: err = %v, want ok %v", tc.when, err, tc.ok)
		}
	}
}

// TestReloadKeepsParsedFiles: after a set compiled without the cache seeds
// it, the next compile keeps each unchanged file's parse, so later reloads
// do not parse it again.
func TestReloadKeepsParsedFiles(t *testing.T) {
	a := Source{Name: "a.yaml", Data: []byte("rules:\n  - {name: a, when: amount > 1, action: step_up, score: 10, reason: A}\n")}
	b := Source{Name: "b.yaml", Data: []byte("rules:\n  - {name: b, when: amount > 2, action: step_up, score: 10, reason: B}\n")}
	set, err := Compile([]Source{a, b}, contractSchema(t))
	if err != nil {
		t.Fatal(err)
	}
	c := &Cache{}
	c.seed(set)
	b.Data = []byte("rules:\n  - {name: b, when: amount > 3, action: step_up, score: 10, reason: B}\n")
	if _, err := compileSet([]Source{a, b}, contractSchema(t), c, options{}); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.parsed(a.Name, sha256.Sum256(a.Data)); !ok {
		t.Error("the unchanged file's parse was not kept: every reload parses it again")
	}
}
