package rules

import (
	"testing"

	"github.com/vigil-fraud/vigil/rules/presence"
)

// TestFieldKindsAgree: the typed accessors rules compile to and the
// presence tests shared with feature filters see the same event fields,
// with the same kinds (a field missing from either would be read without
// its missing-value guard).
func TestFieldKindsAgree(t *testing.T) {
	if len(eventFieldIndex) != len(presence.Fields) {
		t.Errorf("rules know %d event fields, presence %d", len(eventFieldIndex), len(presence.Fields))
	}
	for path, f := range eventFieldIndex {
		if kind, ok := presence.Fields[path]; !ok || kind != f.presenceKind() {
			t.Errorf("%s: rules %v, presence %v (known %v)", path, f.presenceKind(), kind, ok)
		}
	}
}
