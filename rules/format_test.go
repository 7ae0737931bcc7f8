package rules

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFormat(t *testing.T) {
	in := `# Team rules.
rules:
    # large payments
    - {name: big, reason: BIG, when: "amount > 1000", action: step_up, score: 10, tags: [amount,   size]} # inline
    - reason: SMALL
      when: |
        amount < 1
          and card_count_1h > 3
      owner: me
      name: small
      action: approve
      score: 0
lists:
    zeta: [z]
    alpha:
      - a   
      - b
ruleset: {pause_at: 80, step_up_at: 40, label: x}
# trailing note
`
	want := `# Team rules.
ruleset:
  label: x
  step_up_at: 40
  pause_at: 80

lists:
  alpha: [a, b]
  zeta: [z]

rules:
  # large payments
  - name: big # inline
    when: amount > 1000
    action: step_up
    score: 10
    reason: BIG
    tags: [amount, size]

  - name: small
    when: |
      amount < 1
        and card_count_1h > 3
    action: approve
    score: 0
    reason: SMALL
    owner: me
# trailing note
`
	got, err := Format("r.yaml", []byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}

// TestFormatIsIdempotentAndKeepsMeaning formats every valid rule and test
// file we have: formatting twice changes nothing more, and the rules mean
// the same.
func TestFormatIsIdempotentAndKeepsMeaning(t *testing.T) {
	files, _ := filepath.Glob("../testdata/rules/*.good.yaml")
	defaults, _ := filepath.Glob("default/*.yaml")
	files = append(files, defaults...)
	for _, path := range files {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		name := filepath.Base(path)
		once, err := Format(name, data)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		twice, err := Format(name, once)
		if err != nil {
			t.Fatalf("%s formatted: %v\n%s", path, err, once)
		}
		if string(once) != string(twice) {
			t.Errorf("%s: not idempotent:\n--- once\n%s\n--- twice\n%s", path, once, twice)
		}
		if IsTestFile(name) {
			continue
		}
		a, _ := ParseFile(name, data)
		b, err := ParseFile(name, once)
		if err != nil {
			t.Fatalf("%s formatted: %v", path, err)
		}
		if len(a.Rules) != len(b.Rules) || len(a.Lists) != len(b.Lists) {
			t.Fatalf("%s: rules or lists lost", path)
		}
		for i := range a.Rules {
			x, y := a.Rules[i], b.Rules[i]
			if x.Name != y.Name || x.When != y.When || x.Action != y.Action || x.Score != y.Score || x.Reason != y.Reason ||
				x.Message != y.Message || x.Mode != y.Mode || x.RolloutPercent() != y.RolloutPercent() || strings.Join(x.Tags, ",") != strings.Join(y.Tags, ",") {
				t.Errorf("%s: rule %s changed:\n%+v\n%+v", path, x.Name, x, y)
			}
		}
		for k, v := range a.Lists {
			if strings.Join(v, ",") != strings.Join(b.Lists[k], ",") {
				t.Errorf("%s: list %s changed", path, k)
			}
		}
	}
}

func TestFormatRefusesInvalidFiles(t *testing.T) {
	if _, err := Format("r.yaml", []byte("rules:\n  - name: x\n    colour: red\n")); err == nil || !strings.Contains(err.Error(), `unknown key "colour"`) {
		t.Errorf("got %v", err)
	}
}

// TestFormatKeepsFilesReadable: a reordering that would put an alias
// before its anchor is refused, and a test file's second document is an
// error (it used to be dropped by fmt -w).
func TestFormatKeepsFilesReadable(t *testing.T) {
	anchored := "rules:\n  - name: x\n    owner: &team fraud-team\n    description: *team\n    when: amount > 1\n    action: pause\n    score: 10\n    reason: X\n"
	if _, err := ParseFile("r.yaml", []byte(anchored)); err != nil {
		t.Fatal(err)
	}
	if out, err := Format("r.yaml", []byte(anchored)); err == nil {
		if _, perr := ParseFile("r.yaml", out); perr != nil {
			t.Fatalf("formatted into an invalid file: %v\n%s", perr, out)
		}
	} else if !strings.Contains(err.Error(), "not formatted") {
		t.Errorf("got %v", err)
	}
	two := "tests:\n  - name: a\n    transactions: [{id: t1, amount: 1, currency: USD, card: {token: x}}]\n    expect: [{decision: approve}]\n---\ntests: []\n"
	if _, err := Format("r_test.yaml", []byte(two)); err == nil || !strings.Contains(err.Error(), "second one") {
		t.Errorf("second document: %v", err)
	}
}
