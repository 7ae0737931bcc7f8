package rules

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-fraud/vigil/features"
)

// Loader reloads a rules directory into a Manager: all or nothing, only
// when a file changed, recompiling only the changed files, with metrics,
// logs and an append-only audit trail. Reload is safe for concurrent use
// (reloads run one at a time) and never blocks scoring.
type Loader struct {
	FS      fs.FS
	Dir     string
	Display string // directory name shown in errors (default Dir)
	// Schema is what the rules are compiled against when Features is nil.
	Schema *features.Schema
	// Features, when set, is the live features engine: rules are compiled
	// against its schema and bound to it (Manager.LoadBound).
	Features *features.Engine
	// FeaturesFile, when set (with Features), is the feature definitions
	// file, reloaded with the rules: when it changed, its definitions go
	// live in a successor of the features engine (features.Engine.Successor,
	// which keeps the state that did not change) together with rules
	// compiled against them; both or neither.
	FeaturesFile string
	// CheckFeatures, when set, is told of new definitions before they go
	// live (vigil serve warns about label_rate features it cannot feed).
	CheckFeatures func(*features.File)
	Manager       *Manager
	Log           *slog.Logger
	// Audit receives one JSON line per successful reload that changed the
	// set; nil writes audit records to Log only.
	Audit io.Writer
	// OnSwap is called after a new set went live.
	OnSwap func(old, cur *Set)

	mu       sync.Mutex        // serializes reloads
	checksum string            // of the live files
	failed   string            // of the files of the last failed reload, or its read error
	files    map[string]string // name → sha256 of the live files (the features file's too)
	metrics  *loaderMetrics
	now      func() time.Time
}

type loaderMetrics struct {
	success     prometheus.Gauge
	successTime prometheus.Gauge
	errors      prometheus.Counter
	reloads     prometheus.Counter
	duration    prometheus.Gauge
}

// Register creates the loader's metrics on reg.
func (l *Loader) Register(reg prometheus.Registerer) {
	l.metrics = &loaderMetrics{
		success:     prometheus.NewGauge(prometheus.GaugeOpts{Name: "vigil_rules_last_reload_successful", Help: "Whether the last rule reload succeeded (1) or failed (0)."}),
		successTime: prometheus.NewGauge(prometheus.GaugeOpts{Name: "vigil_rules_last_reload_success_timestamp_seconds", Help: "Time of the last successful rule reload."}),
		errors:      prometheus.NewCounter(prometheus.CounterOpts{Name: "vigil_rules_reload_errors_total", Help: "Failed rule reloads."}),
		reloads:     prometheus.NewCounter(prometheus.CounterOpts{Name: "vigil_rules_reloads_total", Help: "Rule reloads that changed the live set."}),
		duration:    prometheus.NewGauge(prometheus.GaugeOpts{Name: "vigil_rules_last_reload_duration_seconds", Help: "Time the last rule reload took to read and compile the files."}),
	}
	reg.MustRegister(l.metrics.success, l.metrics.successTime, l.metrics.errors, l.metrics.reloads, l.metrics.duration)
	l.metrics.success.Set(1)
	l.metrics.successTime.Set(float64(l.clock().Unix()))
}

func (l *Loader) clock() time.Time {
	if l.now != nil {
		return l.now()
	}
	return time.Now()
}

// Init records the live set's files, and the features file's content the
// features engine was built from (nil without FeaturesFile), as the
// baseline for change detection.
func (l *Loader) Init(srcs []Source, features []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.checksum, l.files = checksums(l.withFeatures(srcs, features))
}

// withFeatures adds the features file to the sources checksummed.
func (l *Loader) withFeatures(srcs []Source, data []byte) []Source {
	if l.FeaturesFile == "" || l.Features == nil {
		return srcs
	}
	return append(slices.Clone(srcs), Source{Name: l.FeaturesFile, Data: data})
}

type actorKey struct{}

// WithActor records who asked for a reload (an API key id, a user) in ctx;
// the audit record of the reload names them.
func WithActor(ctx context.Context, actor string) context.Context {
	return context.WithValue(ctx, actorKey{}, actor)
}

func actorOf(ctx context.Context) string {
	a, _ := ctx.Value(actorKey{}).(string)
	return a
}

// Reload re-reads the directory and, if any file changed and all of them
// are valid, makes the new set live. On error the running set stays, every
// problem is logged, and the errors are returned. trigger names the cause
// (sighup, api, poll) for the logs and the audit trail; WithActor adds who.
// A poll does not retry files that already failed unchanged. changed
// reports whether this reload made a new set live: it is decided under the
// loader's lock, so that a concurrent reload cannot make one caller's
// no-op look like a change or the reverse.
func (l *Loader) Reload(ctx context.Context, trigger string) (changed bool, err error) {
	r, err := l.ReloadReport(ctx, trigger)
	return r.Changed, err
}

// Report is what a successful reload did.
type Report struct {
	Changed bool // a new set went live
	// FeaturesFresh lists the features that new definitions start with
	// empty windows (nil when the features did not change).
	FeaturesFresh []string
}

// ReloadReport is Reload, saying what the reload did.
func (l *Loader) ReloadReport(ctx context.Context, trigger string) (Report, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	start := time.Now()
	srcs, err := ReadDir(l.FS, l.Dir, l.Display)
	var fdata []byte
	if err == nil && l.FeaturesFile != "" && l.Features != nil {
		if fdata, err = os.ReadFile(l.FeaturesFile); err != nil {
			err = fmt.Errorf("reading features: %w", err)
		}
	}
	if err != nil && trigger == "poll" && "read\x00"+err.Error() == l.failed {
		return Report{}, nil // reported when it failed
	}
	if err == nil {
		sum, files := checksums(l.withFeatures(srcs, fdata))
		switch {
		case sum == l.checksum:
			level := slog.LevelInfo
			if trigger == "poll" {
				level = slog.LevelDebug
			}
			l.Log.Log(ctx, level, "rules unchanged; nothing to reload", "trigger", trigger, "ruleset", l.Manager.Current().VersionString())
			if l.metrics != nil {
				l.metrics.success.Set(1) // the files are the running set again
			}
			l.failed = ""
			return Report{}, nil
		case sum == l.failed && trigger == "poll":
			return Report{}, nil // reported when it failed
		}
		var old, cur *Set
		var tk *features.Takeover
		if err = emptied(l.Manager.Current(), srcs); err == nil {
			old, cur, tk, err = l.load(srcs, fdata, files[l.FeaturesFile] != l.files[l.FeaturesFile])
		}
		if err == nil {
			changes := changedFiles(l.files, files)
			l.checksum, l.files, l.failed = sum, files, ""
			if cur == old {
				// The files changed, but only where nothing is defined (a
				// features file's comments or layout): the running set is
				// what they define. Audited all the same, so that the
				// trail holds every content the files had.
				if l.metrics != nil {
					l.metrics.success.Set(1)
				}
				l.audit(ctx, "rules unchanged; the changed files define the running set (comments or layout only)", AuditRecord{
					Trigger: trigger, OldVersion: cur.VersionString(), NewVersion: cur.VersionString(), FilesChanged: changes,
					Rules: len(cur.Rules), DurationMS: float64(time.Since(start).Microseconds()) / 1000,
				})
				return Report{}, nil
			}
			l.succeeded(ctx, trigger, old, cur, changes, tk, time.Since(start))
			r := Report{Changed: true}
			if tk != nil {
				r.FeaturesFresh = tk.Fresh
			}
			return r, nil
		}
		l.failed = sum
	} else {
		l.failed = "read\x00" + err.Error()
	}
	if l.metrics != nil {
		l.metrics.success.Set(0)
		l.metrics.errors.Inc()
	}
	errs := Errors(err)
	for _, e := range errs {
		l.Log.Error("rule error", "trigger", trigger, "pos", posString(e.Pos), "rule", e.Rule, "err", e.Err.Error())
	}
	l.Log.Error("rule reload failed; keeping the running ruleset", "trigger", trigger, "errors", len(errs),
		"ruleset", l.Manager.Current().VersionString())
	return Report{}, err
}

// load compiles the rules (against new feature definitions when the
// features file changed) and makes them live, with the features engine for
// the new definitions; nothing when anything fails.
func (l *Loader) load(srcs []Source, fdata []byte, featuresChanged bool) (old, cur *Set, tk *features.Takeover, err error) {
	if l.Features == nil {
		old, cur, err = l.Manager.Load(srcs, l.Schema)
		return old, cur, nil, err
	}
	fe := l.Features
	if l.FeaturesFile != "" && featuresChanged {
		f, err := features.Parse(l.FeaturesFile, fdata)
		if err != nil {
			return nil, nil, nil, err
		}
		if !fe.Computes(f) { // else the file changed in comments or layout only
			if l.CheckFeatures != nil {
				l.CheckFeatures(f)
			}
			if fe, tk, err = l.Features.Successor(f); err != nil {
				return nil, nil, nil, err
			}
		}
	}
	if old, cur, err = l.Manager.LoadBound(srcs, fe); err != nil || fe == l.Features {
		if err != nil && fe != l.Features && strings.Contains(err.Error(), "unknown name") {
			err = errors.Join(err, fmt.Errorf("the features file %s changed in this reload: do the rules read a feature it no longer declares?", l.FeaturesFile))
		}
		return old, cur, nil, err
	}
	// The new definitions and the rules reading them are live: the old
	// state moves over.
	moving := time.Now()
	fe.Activate()
	l.Features = fe
	l.tookOver(tk, time.Since(moving))
	return old, cur, tk, nil
}

// tookOver logs what the new feature definitions kept of the state.
func (l *Loader) tookOver(tk *features.Takeover, took time.Duration) {
	args := []any{"shared", tk.Shared, "moved", tk.Moved, "dropped", tk.Dropped, "fresh", tk.Fresh,
		"move_ms", float64(took.Microseconds()) / 1000}
	switch {
	case len(tk.Fresh) > 0:
		l.Log.Warn("features reloaded; these features start with empty windows (they count events from now on)", args...)
	case len(tk.Dropped) > 0:
		l.Log.Info("features reloaded; every feature kept its state; entity kinds no definition reads were freed", args...)
	default:
		l.Log.Info("features reloaded; every feature kept its state", args...)
	}
}

// emptied refuses a reload in which a file that holds rules of the running
// set is now empty: most likely a deploy caught half-way (the file
// truncated before it is written again), which would drop those rules.
// Deleting the file, or the rules from it, still removes them.
func emptied(running *Set, srcs []Source) error {
	if running == nil {
		return nil
	}
	var errs errorList
	for _, src := range srcs {
		if len(bytes.TrimSpace(src.Data)) > 0 {
			continue
		}
		n := 0
		for _, r := range running.Rules {
			if r.Pos.File == src.Name {
				n++
			}
		}
		if n > 0 {
			errs.add(Pos{src.Name, 1, 1}, "", "the file is empty but holds %d rules of the running set: refusing to drop them "+
				"(delete the file or its rules to remove them; write rule files atomically, by rename)", n)
		}
	}
	return errs.err()
}

func posString(p Pos) string {
	if p.File == "" {
		return ""
	}
	return p.String()
}

// FileChange is one changed file in an audit record.
type FileChange struct {
	Name   string `json:"name"`
	Change string `json:"change"` // added, modified or removed
	SHA256 string `json:"sha256,omitempty"`
}

// AuditRecord is one line of the reload audit log.
type AuditRecord struct {
	Time          time.Time    `json:"time"`
	Trigger       string       `json:"trigger"`         // sighup, api, poll
	Actor         string       `json:"actor,omitempty"` // who, when known
	OldVersion    string       `json:"old_version"`
	NewVersion    string       `json:"new_version"`
	FilesChanged  []FileChange `json:"files_changed"`
	Rules         int          `json:"rules"`
	FilesCompiled int          `json:"files_compiled"`
	DurationMS    float64      `json:"duration_ms"`
	// FeaturesFresh lists the features that new definitions start with
	// empty windows (a features reload only).
	FeaturesFresh []string `json:"features_fresh,omitempty"`
}

func (l *Loader) succeeded(ctx context.Context, trigger string, old, cur *Set, changes []FileChange, tk *features.Takeover, took time.Duration) {
	if l.metrics != nil {
		l.metrics.success.Set(1)
		l.metrics.successTime.Set(float64(l.clock().Unix()))
		l.metrics.reloads.Inc()
		l.metrics.duration.Set(took.Seconds())
	}
	if l.OnSwap != nil {
		l.OnSwap(old, cur)
	}
	rec := AuditRecord{
		Trigger: trigger, OldVersion: old.VersionString(), NewVersion: cur.VersionString(), FilesChanged: changes,
		Rules: len(cur.Rules), FilesCompiled: cur.Stats.Compiled, DurationMS: float64(took.Microseconds()) / 1000,
	}
	if tk != nil {
		rec.FeaturesFresh = tk.Fresh
	}
	l.audit(ctx, "rules reloaded", rec)
}

// audit logs a successful reload (msg) and appends it to the audit log.
func (l *Loader) audit(ctx context.Context, msg string, rec AuditRecord) {
	rec.Time, rec.Actor = l.clock().UTC(), actorOf(ctx)
	names := make([]string, len(rec.FilesChanged))
	for i, c := range rec.FilesChanged {
		names[i] = c.Change + " " + c.Name
	}
	l.Log.Info(msg, "trigger", rec.Trigger, "actor", rec.Actor, "old", rec.OldVersion, "new", rec.NewVersion,
		"files_changed", names, "rules", rec.Rules, "files_compiled", rec.FilesCompiled, "duration_ms", rec.DurationMS)
	if l.Audit != nil {
		line, _ := json.Marshal(rec)
		if _, err := l.Audit.Write(append(line, '\n')); err != nil {
			l.Log.Error("writing the rule audit log", "err", err)
		}
	}
}

// Poll reloads whenever the files' checksums change, until ctx ends. It
// reads the files every interval but compiles only when they changed.
func (l *Loader) Poll(ctx context.Context, every time.Duration) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			l.Reload(ctx, "poll")
		}
	}
}

func checksums(srcs []Source) (string, map[string]string) {
	files := make(map[string]string, len(srcs))
	all := sha256.New()
	for _, s := range srcs {
		h := sha256.Sum256(s.Data)
		files[s.Name] = hex.EncodeToString(h[:])
		fmt.Fprintf(all, "%s\x00%x\x00", s.Name, h)
	}
	return hex.EncodeToString(all.Sum(nil)), files
}

func changedFiles(old, cur map[string]string) []FileChange {
	out := []FileChange{}
	for n, h := range cur {
		switch prev, ok := old[n]; {
		case !ok:
			out = append(out, FileChange{n, "added", h})
		case prev != h:
			out = append(out, FileChange{n, "modified", h})
		}
	}
	for n := range old {
		if _, ok := cur[n]; !ok {
			out = append(out, FileChange{Name: n, Change: "removed"})
		}
	}
	slices.SortFunc(out, func(a, b FileChange) int {
		if a.Name < b.Name {
			return -1
		}
		if a.Name > b.Name {
			return 1
		}
		return 0
	})
	return out
}
