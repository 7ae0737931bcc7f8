package rules

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzCompile feeds rule files to the parser, the compiler, the evaluator
// and the formatter: none may panic; errors must carry positions; a file
// that formats must format to itself again and keep its rules.
func FuzzCompile(f *testing.F) {
	fixtures, _ := filepath.Glob("../testdata/rules/*.yaml")
	for _, p := range fixtures {
		if data, err := os.ReadFile(p); err == nil {
			f.Add(data)
		}
	}
	fs.WalkDir(DefaultFS, DefaultDir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && !IsTestFile(p) {
			data, _ := fs.ReadFile(DefaultFS, p)
			f.Add(data)
		}
		return nil
	})
	f.Add([]byte("rules:\n  - {name: a, when: 'card_count_1h > 3 and ip_country not in @l', action: step_up, score: 1, reason: A}\nlists: {l: [x]}\n"))
	schema := contractSchema(f)
	envs := []*Env{testEnv(f, schema, nil), testEnv(f, schema, map[string]any{"card_count_1h": 5, "ip_country": "x", "account_new_device": true})}
	f.Fuzz(func(t *testing.T, data []byte) {
		set, err := Compile([]Source{{Name: "f.yaml", Data: data}}, schema)
		if err != nil {
			for _, e := range Errors(err) {
				if e.Pos.File != "f.yaml" || e.Pos.Line < 1 || e.Pos.Col < 1 {
					t.Fatalf("error without a position: %v", e)
				}
			}
			return
		}
		var ev Evaluator
		var res Result
		for _, env := range envs {
			ev.Evaluate(set, env, &res)
			if res.Score < 0 || res.Score > 100 {
				t.Fatalf("score %d", res.Score)
			}
		}
		Lint(set)
		once, err := Format("f.yaml", data)
		if err != nil {
			if !strings.Contains(err.Error(), "f.yaml") {
				t.Fatalf("format error without a position: %v", err)
			}
			return
		}
		twice, err := Format("f.yaml", once)
		if err != nil || string(twice) != string(once) {
			t.Fatalf("format not idempotent (%v):\n%s\n---\n%s", err, once, twice)
		}
		again, err := Compile([]Source{{Name: "f.yaml", Data: once}}, schema)
		if err != nil || len(again.Rules) != len(set.Rules) {
			t.Fatalf("formatted file does not compile the same: %v\n%s", err, once)
		}
		for i, r := range set.Rules {
			if g := again.Rules[i]; g.Name != r.Name || g.When != r.When || g.Score != r.Score || g.Action != r.Action {
				t.Fatalf("rule %s changed by formatting", r.Name)
			}
		}
	})
}

// FuzzParseTestFile feeds rule test files to their parser: it may not
// panic, and every error must carry a position inside the file.
func FuzzParseTestFile(f *testing.F) {
	fs.WalkDir(DefaultFS, DefaultDir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && IsTestFile(p) {
			data, _ := fs.ReadFile(DefaultFS, p)
			f.Add(data)
		}
		return nil
	})
	f.Add([]byte("tests:\n  - name: a\n    start: x\n    requires: [gps]\n    transactions: [{id: t, at: 5s, time: 2026-01-01T00:00:00Z, amount: 1, currency: USD, card: {token: x}}]\n    expect: [{id: u, score: 100..5, decision: no, hit: [r]}]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, err := ParseTestFile("f_test.yaml", data)
		if err == nil {
			return
		}
		lines := strings.Count(string(data), "\n") + 1
		for _, e := range Errors(err) {
			if e.Pos.File != "f_test.yaml" || e.Pos.Line < 1 || e.Pos.Col < 1 || e.Pos.Line > lines+1 {
				t.Fatalf("error without a position in the file: %v", e)
			}
		}
	})
}
