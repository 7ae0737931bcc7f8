package rules

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-fraud/vigil/features"
)

// Loader reloads a rules directory into a Manager: all or nothing, skipping
// reloads whose files did not change, with metrics and an audit trail.
type Loader struct {
	FS      fs.FS
	Dir     string
	Display string // directory name shown in errors (default Dir)
	Schema  *features.Schema
	Manager *Manager
	Log     *slog.Logger
	// Audit receives one JSON line per successful reload that changed the
	// set; nil writes audit records to Log only.
	Audit io.Writer
	// OnSwap is called after a new set went live.
	OnSwap func(old, cur *Set)

	mu       sync.Mutex // serializes reloads
	checksum string
	files    map[string]string // name → sha256 of the live files
	metrics  *loaderMetrics
}

type loaderMetrics struct {
	success     prometheus.Gauge
	successTime prometheus.Gauge
	errors      prometheus.Counter
	reloads     prometheus.Counter
}

// Register creates the loader's metrics on reg.
func (l *Loader) Register(reg prometheus.Registerer) {
	l.metrics = &loaderMetrics{
		success:     prometheus.NewGauge(prometheus.GaugeOpts{Name: "vigil_rules_last_reload_successful", Help: "Whether the last rule reload succeeded (1) or failed (0)."}),
		successTime: prometheus.NewGauge(prometheus.GaugeOpts{Name: "vigil_rules_last_reload_success_timestamp_seconds", Help: "Time of the last successful rule reload."}),
		errors:      prometheus.NewCounter(prometheus.CounterOpts{Name: "vigil_rules_reload_errors_total", Help: "Failed rule reloads."}),
		reloads:     prometheus.NewCounter(prometheus.CounterOpts{Name: "vigil_rules_reloads_total", Help: "Rule reloads that changed the live set."}),
	}
	reg.MustRegister(l.metrics.success, l.metrics.successTime, l.metrics.errors, l.metrics.reloads)
	l.metrics.success.Set(1)
	l.metrics.successTime.Set(float64(time.Now().Unix()))
}

// Init records the live set's files as the baseline for change detection.
func (l *Loader) Init(srcs []Source) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.checksum, l.files = checksums(srcs)
}

// Reload re-reads the directory and, if any file changed and all of them are
// valid, makes the new set live. On error the running set stays and every
// problem is logged and returned. trigger names the cause (sighup, api,
// poll) for the audit trail.
func (l *Loader) Reload(ctx context.Context, trigger string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	srcs, err := ReadDir(l.FS, l.Dir, l.Display)
	if err == nil {
		sum, files := checksums(srcs)
		if sum == l.checksum {
			l.Log.Debug("rules unchanged; reload skipped", "trigger", trigger)
			return nil
		}
		var old, cur *Set
		old, cur, err = l.Manager.Load(srcs, l.Schema)
		if err == nil {
			changed := changedFiles(l.files, files)
			l.checksum, l.files = sum, files
			l.succeeded(trigger, old, cur, changed)
			return nil
		}
	}
	if l.metrics != nil {
		l.metrics.success.Set(0)
		l.metrics.errors.Inc()
	}
	l.Log.Error("rule reload failed; keeping the running ruleset", "trigger", trigger, "ruleset", l.Manager.Current().VersionString(), "err", err)
	return err
}

func (l *Loader) succeeded(trigger string, old, cur *Set, changed []string) {
	if l.metrics != nil {
		l.metrics.success.Set(1)
		l.metrics.successTime.Set(float64(time.Now().Unix()))
		l.metrics.reloads.Inc()
	}
	if l.OnSwap != nil {
		l.OnSwap(old, cur)
	}
	rec := struct {
		Time    time.Time `json:"time"`
		Trigger string    `json:"trigger"`
		Old     string    `json:"old_version"`
		New     string    `json:"new_version"`
		Files   []string  `json:"files_changed"`
		Rules   int       `json:"rules"`
	}{time.Now().UTC(), trigger, old.VersionString(), cur.VersionString(), changed, len(cur.Rules)}
	l.Log.Info("rules reloaded", "trigger", trigger, "old", rec.Old, "new", rec.New, "files_changed", changed, "rules", rec.Rules)
	if l.Audit != nil {
		line, _ := json.Marshal(rec)
		if _, err := l.Audit.Write(append(line, '\n')); err != nil {
			l.Log.Error("writing the rule audit log", "err", err)
		}
	}
}

// Poll reloads whenever the files' checksums change, until ctx ends.
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

func changedFiles(old, cur map[string]string) []string {
	var out []string
	for n, h := range cur {
		if old[n] != h {
			out = append(out, n)
		}
	}
	for n := range old {
		if _, ok := cur[n]; !ok {
			out = append(out, n+" (removed)")
		}
	}
	slices.Sort(out)
	return out
}
