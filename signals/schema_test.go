package signals

import (
	"strings"
	"testing"
)

// The labels table keeps labelled_at DateTime64(3) where the server has it;
// a labels table whose labelled_at holds whole seconds (created on a server
// without DateTime64, also one upgraded since) gets labelled_at_ms from
// migration 4, once, and the views order labels by both wherever it is.
func TestLabelsMsVariants(t *testing.T) {
	if ddl := labelsDDL("vigil", CapabilitiesOf("24.8.1")); !strings.Contains(ddl, "labelled_at DateTime64(3, 'UTC')") || strings.Contains(ddl, "_ms") {
		t.Errorf("24.8 labels table:\n%s", ddl)
	}
	const (
		bySecond = "argMax(label, labelled_at)"
		byMs     = "argMax(label, (labelled_at, labelled_at_ms))"
	)
	tests := []struct {
		name       string
		server     string
		labelledAt string // its type
		hasMs      bool   // labelled_at_ms is there already
		alter      bool
		order      string
	}{
		{"DateTime64", "24.8.1", "DateTime64(3, 'UTC')", false, false, bySecond},
		{"DateTime", "18.16.1", "DateTime('UTC')", false, true, byMs},
		{"DateTime, run again", "18.16.1", "DateTime('UTC')", true, false, byMs},
		{"DateTime, server upgraded", "24.8.1", "DateTime('UTC')", false, true, byMs},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tables := Tables{LabelsTable: {"event_id": "String", "labelled_at": tt.labelledAt}}
			if tt.hasMs {
				tables[LabelsTable]["labelled_at_ms"] = "UInt16"
			}
			stmts := Migrations[3].Statements("vigil", CapabilitiesOf(tt.server), tables)
			if alter := strings.HasPrefix(stmts[0], "ALTER TABLE `vigil`.labels ADD COLUMN labelled_at_ms UInt16 AFTER labelled_at"); alter != tt.alter {
				t.Errorf("adds labelled_at_ms: %v, want %v (%s)", alter, tt.alter, stmts[0])
			}
			reading := 0
			for _, s := range stmts {
				if !strings.Contains(s, ".labels") || strings.HasPrefix(s, "ALTER") {
					continue
				}
				reading++
				if strings.Count(s, "argMax(label, ") != strings.Count(s, tt.order) {
					t.Errorf("a view orders labels otherwise than by %s:\n%s", tt.order, s)
				}
			}
			if reading != len(views)-1 { // all but v_decisions_per_minute
				t.Errorf("%d views read labels, want %d", reading, len(views)-1)
			}
		})
	}
}
