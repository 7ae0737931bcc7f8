package rules

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-fraud/vigil/engine/event"
	"github.com/vigil-fraud/vigil/features"
)

// TestReloadFeatures: the features file reloads with the rules. New
// definitions go live with rules compiled against them, keeping the state
// of the features that did not change; definitions that do not parse, or
// that the rules cannot read, leave both the rules and the features as
// they were.
func TestReloadFeatures(t *testing.T) {
	dir := t.TempDir()
	ffile := filepath.Join(dir, "features.yaml")
	const defs = "features:\n  - {name: card_count, entity: card.token, aggregate: count, windows: [1h]}\n"
	write := func(s string) {
		if err := os.WriteFile(ffile, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(defs)
	f, err := features.Parse(ffile, []byte(defs))
	if err != nil {
		t.Fatal(err)
	}
	fe, err := features.New(f)
	if err != nil {
		t.Fatal(err)
	}
	rule := func(when string) *fstest.MapFile {
		return &fstest.MapFile{Data: []byte("rules:\n  - {name: r, when: '" + when + "', action: pause, score: 90, reason: R}\n")}
	}
	fsys := fstest.MapFS{"r/a.yaml": rule("card_count_1h > 2")}
	srcs, err := ReadDir(fsys, "r", "")
	if err != nil {
		t.Fatal(err)
	}
	set, err := Compile(srcs, fe.Schema())
	if err != nil {
		t.Fatal(err)
	}
	m := NewManager(set)
	audit := &bytes.Buffer{}
	l := &Loader{FS: fsys, Dir: "r", Features: fe, FeaturesFile: ffile, Manager: m, Log: quietLog(), Audit: audit}
	l.Init(srcs, []byte(defs))

	next := int64(0) // event times go on from one call to the next
	observe := func(n int) *features.Vector {
		cur := m.Current()
		e := cur.Features
		if e == nil {
			e = fe
		}
		v := features.NewVector(e.Schema())
		for range n {
			next++
			e.Observe(&event.Event{ID: "x", Time: time.Unix(1_700_000_000+next, 0), Amount: 100, Currency: "USD",
				Card: event.Card{Token: "tok"}, Merchant: event.Merchant{ID: "m"}}, v)
		}
		return v
	}
	observe(3)
	if changed, err := l.Reload(context.Background(), "api"); err != nil || changed {
		t.Fatalf("unchanged: %v %v", changed, err)
	}
	// Comments and layout only: the running set and engine stay.
	write("# card velocity\nfeatures:\n  - name: card_count   # per card\n    windows: [1h]\n    aggregate: count\n    entity: card.token\n")
	if changed, err := l.Reload(context.Background(), "api"); err != nil || changed || m.Current() != set || l.Features != fe {
		t.Fatalf("a comment-only change: changed %v, err %v, set kept %v, engine kept %v", changed, err, m.Current() == set, l.Features == fe)
	}
	// ... audited all the same: the trail holds every content of the files.
	var unchanged AuditRecord
	if err := json.Unmarshal(audit.Bytes(), &unchanged); err != nil {
		t.Fatal(err)
	}
	if unchanged.OldVersion != set.VersionString() || unchanged.NewVersion != set.VersionString() ||
		len(unchanged.FilesChanged) != 1 || unchanged.FilesChanged[0].Name != ffile || unchanged.FilesChanged[0].Change != "modified" {
		t.Errorf("the comment-only change's audit record: %+v", unchanged)
	}
	// A new help text is a change (it is what ?explain and the schema
	// show), though the version — what the rules compute — stays.
	write("features:\n  - {name: card_count, entity: card.token, aggregate: count, windows: [1h], help: payments of the card}\n")
	if changed, err := l.Reload(context.Background(), "api"); err != nil || !changed || l.Features == fe || m.Current().Version != set.Version {
		t.Fatalf("a new help text: changed %v, err %v, new engine %v, version %s (was %s)", changed, err, l.Features != fe, m.Current().Version, set.Version)
	}
	write(defs)
	if changed, err := l.Reload(context.Background(), "api"); err != nil || !changed {
		t.Fatalf("the help text removed again: %v %v", changed, err)
	}
	set, fe = m.Current(), l.Features
	audit.Reset()

	// A definition the rules cannot read any more: both stay, and the
	// error says the features changed.
	write("features:\n  - {name: card_total, entity: card.token, aggregate: count, windows: [1h]}\n")
	if changed, err := l.Reload(context.Background(), "api"); err == nil || changed || !strings.Contains(err.Error(), "card_count_1h") ||
		!strings.Contains(err.Error(), "the features file "+ffile+" changed in this reload") {
		t.Fatalf("rules reading a removed feature: %v %v", changed, err)
	}
	// A file that does not parse: both stay, the error says where.
	write("features:\n  - {name: x, entity: card.token, aggregate: count, windows: [1h], bogus: 1}\n")
	changed, err := l.Reload(context.Background(), "api")
	if err == nil || changed || !strings.Contains(err.Error(), ffile+":2:") {
		t.Fatalf("broken features: %v %v", changed, err)
	}
	if errs := Errors(err); errs[0].Pos.File != ffile || errs[0].Pos.Line != 2 {
		t.Errorf("the error's position %+v, want %s:2", errs[0].Pos, ffile)
	}
	// A file gone: both stay; a poll reports it once.
	reg := prometheus.NewRegistry()
	l.Register(reg)
	if err := os.Remove(ffile); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		l.Reload(context.Background(), "poll")
	}
	if got := metric(t, reg, "vigil_rules_reload_errors_total"); got != 1 {
		t.Errorf("a missing features file polled 3 times: %v errors, want 1", got)
	}
	if m.Current() != set || l.Features != fe {
		t.Fatal("a failed reload changed the live set or engine")
	}

	// A new feature and a rule reading it, in one reload.
	write(defs + "  - {name: card_merchants, entity: card.token, aggregate: distinct, field: merchant.id, windows: [1h]}\n")
	fsys["r/a.yaml"] = rule("card_count_1h > 2 and card_merchants_1h == 1")
	if changed, err := l.Reload(context.Background(), "api"); err != nil || !changed {
		t.Fatalf("reload: %v %v", changed, err)
	}
	cur := m.Current()
	if cur.Features == nil || cur.Features == fe || l.Features != cur.Features || cur.Schema != cur.Features.Schema() || cur.Version == set.Version {
		t.Fatalf("set %+v bound to %p (was %p)", cur.Version, cur.Features, fe)
	}
	v := observe(1) // the card's 4th event: its count went on, the distinct count started with it
	for name, want := range map[string]float64{"card_count_1h": 4, "card_merchants_1h": 1} {
		i, _ := cur.Schema.Lookup(name)
		if v.Num[i] != want {
			t.Errorf("%s = %v, want %v", name, v.Num[i], want)
		}
	}
	var rec AuditRecord
	if err := json.Unmarshal(audit.Bytes(), &rec); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rec.FeaturesFresh, []string{"card_merchants_1h"}) || len(rec.FilesChanged) != 2 {
		t.Errorf("audit %+v", rec)
	}
	// The old engine's registered metrics and label feed follow.
	if fe.Stats() != cur.Features.Stats() {
		t.Error("the replaced engine does not follow its successor")
	}
	// Only the rules change: the set stays bound to the live engine.
	fsys["r/a.yaml"] = rule("card_count_1h > 3")
	if changed, err := l.Reload(context.Background(), "api"); err != nil || !changed || m.Current().Features != cur.Features {
		t.Fatalf("rules-only reload: %v %v", changed, err)
	}
}
