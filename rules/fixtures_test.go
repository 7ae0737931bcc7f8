package rules

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var wantRe = regexp.MustCompile(`(?m)^# want: (.*)$`)

// TestFixtures compiles every testdata/rules fixture against the contract
// schema: *.good.yaml must compile; *.bad.yaml must fail with exactly the
// errors its "# want: line:col: message" comments list, all at once.
func TestFixtures(t *testing.T) {
	schema := contractSchema(t)
	files, _ := filepath.Glob("../testdata/rules/*.yaml")
	if len(files) < 10 {
		t.Fatalf("only %d fixtures", len(files))
	}
	for _, path := range files {
		name := filepath.Base(path)
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			_, err = Compile([]Source{{Name: name, Data: data}}, schema)
			switch {
			case strings.HasSuffix(name, ".good.yaml"):
				if err != nil {
					t.Fatalf("want no errors, got:\n%v", err)
				}
			case strings.HasSuffix(name, ".bad.yaml"):
				var wants []string
				for _, m := range wantRe.FindAllStringSubmatch(string(data), -1) {
					wants = append(wants, name+":"+m[1])
				}
				if len(wants) == 0 {
					t.Fatal("a bad fixture needs # want: lines")
				}
				got := Errors(err)
				var gotText []string
				for _, e := range got {
					gotText = append(gotText, e.Error())
				}
				if len(got) != len(wants) {
					t.Errorf("got %d errors, want %d:\n%s", len(got), len(wants), strings.Join(gotText, "\n"))
				}
				for _, w := range wants {
					found := false
					for _, g := range gotText {
						if strings.HasPrefix(g, w) || (strings.HasSuffix(w, "...") && strings.HasPrefix(g, strings.TrimSuffix(w, "..."))) {
							found = true
						}
					}
					if !found {
						t.Errorf("missing error %q; got:\n%s", w, strings.Join(gotText, "\n"))
					}
				}
			default:
				t.Fatal("fixtures are named *.good.yaml or *.bad.yaml")
			}
		})
	}
}
