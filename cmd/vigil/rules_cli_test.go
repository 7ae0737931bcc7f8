package main

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// writeFiles creates files in a new directory.
func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

const cliRules = `ruleset: {label: cli, step_up_at: 40, pause_at: 80}
rules:
  - name: velocity
    when: card_count_10m >= 3
    action: step_up
    score: 40
    reason: VELOCITY
  - name: huge
    when: amount >= 10000
    action: pause
    score: 60
    reason: HUGE
`

const cliTests = `tests:
  - name: third attempt steps up
    transactions:
      - {id: t, repeat: 3, every: 1m, amount: 500, currency: USD, card: {token: tok_1}}
    expect:
      - {id: t-3, decision: step_up, hits: [velocity]}
  - name: first attempt is approved
    transactions:
      - {id: a, amount: 500, currency: USD, card: {token: tok_2}}
    expect:
      - {decision: approve}
`

func TestRulesCLI(t *testing.T) {
	good := writeFiles(t, map[string]string{"r.yaml": cliRules, "r_test.yaml": cliTests})
	bad := writeFiles(t, map[string]string{"r.yaml": cliRules, "bad.yaml": "rules:\n  - name: x\n    when: card_count_1hr > 3\n    action: pause\n    score: 10\n    reason: X\n"})
	lint := writeFiles(t, map[string]string{"r.yaml": cliRules + "  - {name: never, when: 'amount > 10 and amount < 5', action: step_up, score: 40, reason: NEVER}\n"})
	badTest := writeFiles(t, map[string]string{"r.yaml": cliRules, "r_test.yaml": "tests:\n  - name: x\n    transactions: [{id: a, amount: 1, currency: XXX, card: {token: t}}]\n    expect: [{decision: approve}]\n"})
	failing := writeFiles(t, map[string]string{"r.yaml": cliRules, "r_test.yaml": strings.Replace(cliTests, "decision: approve}", "decision: pause}", 1)})
	cannotHold := writeFiles(t, map[string]string{"r.yaml": cliRules, "r_test.yaml": strings.Replace(cliTests,
		"hits: [velocity]}", "hits: [velocty], features: {card_count_1hr: 3}}", 1)})
	junit := filepath.Join(t.TempDir(), "junit.xml")
	for _, tc := range []struct {
		args       []string
		code       int
		stdout     string // substrings, | separated
		stderr     string
		notStdout  string
		skipStdout bool
	}{
		{args: []string{"rules"}, code: 2, stderr: "Usage: vigil rules COMMAND"},
		{args: []string{"rules", "frobnicate"}, code: 2, stderr: `unknown command "frobnicate"`},
		{args: []string{"rules", "check"}, code: 0, stdout: "embedded:rules/default: 26 rules in 7 files, 3 lists|ruleset starter@|: ok"},
		{args: []string{"rules", "check", good}, code: 0, stdout: "2 rules in 1 files, 0 lists, 2 tests; ruleset cli@"},
		{args: []string{"rules", "check", bad}, code: 1, stderr: filepath.Join(bad, "bad.yaml") + `:3:11: rule "x": unknown name card_count_1hr (did you mean card_count_1h?)`},
		{args: []string{"rules", "check", lint}, code: 3, stdout: `rule "never": never fires: amount > 10 and amount < 5 cannot all hold [never-fires]|valid, 1 warnings`},
		{args: []string{"rules", "check", badTest}, code: 1, stderr: `r_test.yaml:3:20: test "x": transaction 1: invalid event: currency`},
		{args: []string{"rules", "check", "/no/such/dir"}, code: 2, stderr: "no such file"},
		{args: []string{"rules", "check", cannotHold}, code: 1, stderr: `r_test.yaml:6:45: test "third attempt steps up" expects a hit of rule velocty, which the set does not have (did you mean velocity?)|` +
			`r_test.yaml:6:66: test "third attempt steps up" expects feature card_count_1hr, which the feature definitions do not provide (did you mean card_count_1h?)`},
		{args: []string{"rules", "test"}, code: 0, stdout: "ok\tembedded:rules/default: 39 passed, 0 failed, 3 skipped"},
		{args: []string{"rules", "test", good, "-v", "--junit", junit}, code: 0, stdout: "--- PASS: " + filepath.Join(good, "r_test.yaml") + "/third attempt steps up|2 passed, 0 failed"},
		{args: []string{"rules", "test", "--run", "first", good}, code: 0, stdout: "1 passed, 0 failed, 0 skipped"},
		{args: []string{"rules", "test", failing}, code: 1, stdout: "--- FAIL: " + filepath.Join(failing, "r_test.yaml") + "/first attempt is approved|a (line 11): decision approve, want pause|FAIL\t"},
		{args: []string{"rules", "test", "--run", "(", good}, code: 2, stderr: "--run"},
		{args: []string{"rules", "test", bad}, code: 1, stderr: "unknown name card_count_1hr"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var out, errb bytes.Buffer
			code := dispatch(tc.args, &out, &errb)
			if code != tc.code {
				t.Errorf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.code, out.String(), errb.String())
			}
			for _, want := range strings.Split(tc.stdout, "|") {
				if !strings.Contains(out.String(), want) {
					t.Errorf("stdout lacks %q:\n%s", want, out.String())
				}
			}
			for _, want := range strings.Split(tc.stderr, "|") {
				if !strings.Contains(errb.String(), want) {
					t.Errorf("stderr lacks %q:\n%s", want, errb.String())
				}
			}
		})
	}
	data, err := os.ReadFile(junit)
	if err != nil {
		t.Fatal(err)
	}
	var suites struct {
		Tests int `xml:"tests,attr"`
	}
	if err := xml.Unmarshal(data, &suites); err != nil || suites.Tests != 2 {
		t.Errorf("junit %d tests, %v:\n%s", suites.Tests, err, data)
	}
}

func TestRulesFmtCLI(t *testing.T) {
	messy := "rules:\n    - reason: X\n      name: x\n      when: amount > 1\n      score: 1\n      action: step_up\n"
	clean := "rules:\n  - name: x\n    when: amount > 1\n    action: step_up\n    score: 1\n    reason: X\n"
	dir := writeFiles(t, map[string]string{"a.yaml": messy, "b.yaml": clean})
	run := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := dispatch(append([]string{"rules", "fmt"}, args...), &out, &errb)
		return code, out.String(), errb.String()
	}
	if code, out, _ := run(filepath.Join(dir, "a.yaml")); code != 0 || out != clean {
		t.Errorf("fmt FILE: %d %q", code, out)
	}
	if code, out, _ := run("-l", dir); code != 1 || out != filepath.Join(dir, "a.yaml")+"\n" {
		t.Errorf("fmt -l: %d %q", code, out)
	}
	if code, out, _ := run("-w", dir); code != 0 || out != filepath.Join(dir, "a.yaml")+"\n" {
		t.Errorf("fmt -w: %d %q", code, out)
	}
	if data, _ := os.ReadFile(filepath.Join(dir, "a.yaml")); string(data) != clean {
		t.Errorf("rewritten: %q", data)
	}
	if code, out, _ := run("-l", dir); code != 0 || out != "" {
		t.Errorf("fmt -l after -w: %d %q", code, out)
	}
	os.WriteFile(filepath.Join(dir, "c.yaml"), []byte("rules:\n  - name: x\n    colour: red\n"), 0o644)
	if code, _, errb := run("-l", dir); code != 1 || !strings.Contains(errb, `c.yaml:3:5: rule "x": unknown key "colour"`) {
		t.Errorf("fmt invalid: %d %q", code, errb)
	}
}

func TestRulesExplainCLI(t *testing.T) {
	dir := writeFiles(t, map[string]string{"events.jsonl": `{"id":"e1","time":"2026-01-01T10:00:00Z","amount":500,"currency":"USD","card":{"token":"tok_x","country":"US"}}
{"id":"e2","time":"2026-01-01T10:01:00Z","amount":500,"currency":"USD","card":{"token":"tok_x","country":"US"}}
{"id":"e3","time":"2026-01-01T10:02:00Z","amount":500,"currency":"USD","card":{"token":"tok_x","country":"US"}}
{"id":"e4","time":"2026-01-01T10:03:00Z","amount":500,"currency":"USD","card":{"token":"tok_x","country":"US"}}
{"id":"e5","time":"2026-01-01T10:04:00Z","amount":500,"currency":"USD","card":{"token":"tok_x","country":"US"},"billing":{"country":"DE"}}
`})
	events := filepath.Join(dir, "events.jsonl")
	var out, errb bytes.Buffer
	if code := dispatch([]string{"rules", "explain", "--event", events}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	text := out.String()
	for _, want := range []string{
		"event e5 at 2026-01-01T10:04:00Z: step_up, score 55, ruleset starter@",
		"reasons: CARD_VELOCITY_10M, BILLING_COUNTRY_MISMATCH",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("lacks %q:\n%s", want, text)
		}
	}
	for _, re := range []string{
		`card_velocity_10m\s+true\s+counted\s+step_up\s+40\s+card_count_10m=5\n`,
		`ip_velocity_1h\s+false\s+-\s+step_up\s+30\s+ip_count_1h=missing\n`,
		`billing_country_mismatch\s+true\s+counted\s+approve\s+15\s+billing.country="DE" card.country="US"\n`,
	} {
		if !regexpMatch(re, text) {
			t.Errorf("no line matching %s:\n%s", re, text)
		}
	}
	out.Reset()
	if code := dispatch([]string{"rules", "explain", "--json", "--event", events}, &out, &errb); code != 0 {
		t.Fatalf("json: exit %d", code)
	}
	var x struct {
		Event    string `json:"event"`
		Decision string `json:"decision"`
		Rules    []struct {
			Rule  string `json:"rule"`
			Value bool   `json:"value"`
			Reads []struct {
				Name  string `json:"name"`
				Value any    `json:"value"`
			} `json:"reads"`
		} `json:"rules"`
	}
	if err := json.Unmarshal(out.Bytes(), &x); err != nil || x.Event != "e5" || x.Decision != "step_up" || len(x.Rules) != 26 {
		t.Errorf("json %v: %+v", err, x)
	}
	errb.Reset()
	if code := dispatch([]string{"rules", "explain"}, &out, &errb); code != 2 || !strings.Contains(errb.String(), "--event FILE") {
		t.Errorf("without --event: %d %s", code, errb.String())
	}
	os.WriteFile(events, []byte(`{"id":"e1","amount":"lots"}`), 0o644)
	if code := dispatch([]string{"rules", "explain", "--event", events}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "event 1") {
		t.Errorf("bad event: %d %s", code, errb.String())
	}
}

func TestRulesDumpCLI(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "rules")
	var out, errb bytes.Buffer
	if code := dispatch([]string{"rules", "dump", dir}, &out, &errb); code != 0 {
		t.Fatalf("dump: %d %s", code, errb.String())
	}
	if !strings.Contains(out.String(), filepath.Join(dir, "starter.yaml")) || !strings.Contains(out.String(), filepath.Join(dir, "card_testing_test.yaml")) {
		t.Errorf("dump output:\n%s", out.String())
	}
	if code := dispatch([]string{"rules", "dump", dir}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "exists; use --force") {
		t.Errorf("dump over existing files: %d %s", code, errb.String())
	}
	if code := dispatch([]string{"rules", "dump", "--force", dir}, &out, &errb); code != 0 {
		t.Errorf("dump --force: %d", code)
	}
	// What a user starts from checks and tests clean, and serves.
	for _, args := range [][]string{{"rules", "check", dir}, {"rules", "test", dir}, {"rules", "fmt", "-l", dir}, {"serve", "--check-config", "--rules", dir}} {
		out.Reset()
		errb.Reset()
		if code := dispatch(args, &out, &errb); code != 0 {
			t.Errorf("%v: exit %d\n%s%s", args, code, out.String(), errb.String())
		}
	}
}

func regexpMatch(re, s string) bool { return regexp.MustCompile(re).MatchString(s) }
