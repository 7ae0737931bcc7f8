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
