package main

import (
	"bytes"
	"os"
	"regexp"
	"testing"
)

// TestREADMEStarterVersion keeps the README's example decisions true: every
// starter ruleset version it shows is the embedded one's (a content hash,
// so any edit of the starter rules changes it).
func TestREADMEStarterVersion(t *testing.T) {
	var out, errb bytes.Buffer
	if code := dispatch([]string{"rules", "check"}, &out, &errb); code != 0 {
		t.Fatalf("rules check: exit %d: %s", code, errb.String())
	}
	version := regexp.MustCompile(`starter@[0-9a-f]{12}`)
	want := version.FindString(out.String())
	if want == "" {
		t.Fatalf("rules check names no starter version:\n%s", out.String())
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	shown := version.FindAllString(string(readme), -1)
	if len(shown) == 0 {
		t.Fatal("README.md shows no starter ruleset version")
	}
	for _, v := range shown {
		if v != want {
			t.Errorf("README.md shows %s; the embedded starter rules are %s", v, want)
		}
	}
}

// TestReplayDocVersions keeps docs/replay.md's example output true: the
// fixture's ruleset versions it shows are what vigil rules check gives for
// testdata/replay's rules and baseline.
func TestReplayDocVersions(t *testing.T) {
	doc, err := os.ReadFile("../../docs/replay.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ dir, label string }{
		{"../../testdata/replay/rules", "fixture"},
		{"../../testdata/replay/baseline", "fixture-baseline"},
	} {
		var out, errb bytes.Buffer
		if code := dispatch([]string{"rules", "check", "--features", "../../testdata/replay/features.yaml", tc.dir}, &out, &errb); code != 0 && code != 3 {
			t.Fatalf("rules check %s: exit %d: %s", tc.dir, code, errb.String())
		}
		version := regexp.MustCompile(regexp.QuoteMeta(tc.label) + `@[0-9a-f]{12}\b`)
		want := version.FindString(out.String())
		if want == "" {
			t.Fatalf("rules check %s names no %s version:\n%s", tc.dir, tc.label, out.String())
		}
		shown := version.FindAllString(string(doc), -1)
		if len(shown) == 0 {
			t.Errorf("docs/replay.md shows no %s version", tc.label)
		}
		for _, v := range shown {
			if v != want {
				t.Errorf("docs/replay.md shows %s; %s is %s", v, tc.dir, want)
			}
		}
	}
}
