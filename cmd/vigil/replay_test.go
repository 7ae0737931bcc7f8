package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigil-fraud/vigil/engine/replay"
)

const replayFixture = "../../testdata/replay"

func replayArgs(extra ...string) []string {
	return append([]string{"replay", "--quiet",
		"--events", filepath.Join(replayFixture, "events.jsonl"),
		"--labels", filepath.Join(replayFixture, "labels.jsonl"),
		"--rules", filepath.Join(replayFixture, "rules"),
		"--features", filepath.Join(replayFixture, "features.yaml"),
		"--label-delay", "1d"}, extra...)
}

// TestReplayCLI runs the hand-computed fixture (engine/replay TestFixture
// explains the numbers) through the command, as JSON and as a table.
func TestReplayCLI(t *testing.T) {
	var out, errb bytes.Buffer
	if code := dispatch(replayArgs("--json", "--baseline", filepath.Join(replayFixture, "baseline")), &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	var rep replay.Report
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Events != 12 || rep.Labels.Fraud != 7 || rep.Labels.Unmatched != 1 ||
		rep.Decisions.Approve != 5 || rep.Decisions.StepUp != 2 || rep.Decisions.Pause != 5 ||
		rep.Pause.Caught != 3 || rep.Pause.F1 != 0.5 || rep.StepUpOrPause.Caught != 4 ||
		rep.Baseline == nil || rep.Baseline.Changed != 6 || len(rep.Baseline.Changes) != 6 || len(rep.Rules) != 4 {
		t.Errorf("report %s", out.String())
	}
	// The JSON names: a contract for scripts.
	for _, key := range []string{`"decisions"`, `"approve_rate"`, `"step_up_or_pause"`, `"precision"`, `"recall"`, `"f1"`,
		`"fraud_hits"`, `"baseline"`, `"transitions"`, `"changes"`, `"events_per_second"`, `"skipped"`, `"repeated"`, `"id_reused"`} {
		if !strings.Contains(out.String(), key) {
			t.Errorf("JSON lacks %s", key)
		}
	}
	out.Reset()
	if code := dispatch(replayArgs("--baseline", filepath.Join(replayFixture, "baseline"), "--changes", "2"), &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	for _, want := range []string{"ruleset fixture@", "baseline fixture-baseline@", "step_up or pause  7", "6 transactions change decision", "... 4 more"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
}

func TestReplayCLIProgressAndCSV(t *testing.T) {
	dir := t.TempDir()
	csvFile := filepath.Join(dir, "tx.csv")
	if err := os.WriteFile(csvFile, []byte("TX,TS,AMT,CARD,M,FRAUD\n"+
		"a,1767258000,20,tok_A,m1,1\nb,1767258600,30,tok_A,m1,0\nc,1767259200,40,tok_A,m2,\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	code := dispatch([]string{"replay", "--events", csvFile, "--map", "TX=id,TS=time,AMT=amount.major,CARD=card.token,M=merchant.id,FRAUD=label",
		"--currency", "eur", "--rules", filepath.Join(replayFixture, "rules"), "--features", filepath.Join(replayFixture, "features.yaml"), "--json"}, &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	var rep replay.Report
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Events != 3 || rep.Labels.Labelled != 2 || rep.Labels.Fraud != 1 || rep.Decisions.Pause != 1 {
		t.Errorf("report %s", out.String())
	}
	if !strings.Contains(errb.String(), "read 3 transactions and 2 labels") || !strings.Contains(errb.String(), "3/3 events (100%)") {
		t.Errorf("progress: %s", errb.String())
	}
}

// TestReplayCLIRepeatedID: six identical lines are one transaction, as
// for live scoring (approve, then five replayed answers), not approve 2,
// pause 4; the JSON and the table say how many were skipped.
func TestReplayCLIRepeatedID(t *testing.T) {
	events := filepath.Join(t.TempDir(), "events.jsonl")
	line := `{"id":"r1","time":"2026-01-01T10:00:00Z","amount":2000,"currency":"EUR","card":{"token":"tok_R"},"merchant":{"id":"m1"}}` + "\n"
	if err := os.WriteFile(events, []byte(strings.Repeat(line, 6)), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"replay", "--quiet", "--events", events, "--rules", filepath.Join(replayFixture, "rules"),
		"--features", filepath.Join(replayFixture, "features.yaml")}
	var out, errb bytes.Buffer
	if code := dispatch(append(args, "--json"), &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	var rep replay.Report
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Events != 1 || rep.Decisions.Approve != 1 || rep.Decisions.Pause != 0 || rep.Skipped != (replay.Skipped{Repeated: 5}) {
		t.Errorf("report %s", out.String())
	}
	out.Reset()
	if code := dispatch(args, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if want := "skipped: 5 repeated ids"; !strings.Contains(out.String(), want) {
		t.Errorf("table lacks %q:\n%s", want, out.String())
	}
}

func TestReplayCLIErrors(t *testing.T) {
	dir := t.TempDir()
	badRules := filepath.Join(dir, "bad")
	if err := os.Mkdir(badRules, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(badRules, "r.yaml"), []byte("rules:\n  - {name: x, when: nope > 1, action: pause, score: 1, reason: X}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args   []string
		code   int
		stderr string
	}{
		{[]string{"replay"}, 2, "usage: vigil replay"},
		{replayArgs("--label-delay", "soon"), 2, "--label-delay"},
		{replayArgs("--format", "xml"), 1, `unknown --format "xml"`},
		{replayArgs("--map", "A=id"), 1, "apply to --format csv only"},
		{replayArgs("--map", "A=nowhere", "--format", "csv"), 1, `unknown field "nowhere"`},
		{replayArgs("--rules", badRules), 1, "unknown name nope"},
		{replayArgs("--baseline", badRules), 1, "unknown name nope"},
		{replayArgs("--labels", filepath.Join(dir, "none.jsonl")), 1, "no such file"},
		{[]string{"replay", "--events", filepath.Join(dir, "none.jsonl")}, 1, "no such file"},
		{replayArgs("--format", "fdh"), 1, "fdh header"},
	} {
		var out, errb bytes.Buffer
		if code := dispatch(c.args, &out, &errb); code != c.code || !strings.Contains(errb.String(), c.stderr) {
			t.Errorf("%v: exit %d, stderr %q; want %d, %q", c.args, code, errb.String(), c.code, c.stderr)
		}
	}
}

// TestReplayFDH replays the shared FDH month with the embedded starter
// rules: every transaction, under a minute, and the detection quality of
// bench results (docs/replay.md) within a small tolerance.
func TestReplayFDH(t *testing.T) {
	if testing.Short() || raceDetector {
		t.Skip("replays 288,062 transactions; not in -short or -race runs")
	}
	path := filepath.Join("..", "..", "..", "shared", "datasets", "fdh", "transactions-2018-04.csv.gz")
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		t.Skipf("FDH dataset not found at %s; skipping", path)
	}
	var out, errb bytes.Buffer
	if code := dispatch([]string{"replay", "--quiet", "--format", "fdh", "--events", path, "--json"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	var rep replay.Report
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d events in %.1fs (%.0f/s); step_up or pause: precision %.3f recall %.3f; pause: precision %.3f recall %.3f",
		rep.Events, rep.Seconds, rep.EventsPerSecond, rep.StepUpOrPause.Precision, rep.StepUpOrPause.Recall, rep.Pause.Precision, rep.Pause.Recall)
	if rep.Events != 288062 || rep.Labels.Fraud != 1702 || len(rep.Groups) != 4 {
		t.Errorf("events %d, fraud %d, groups %d", rep.Events, rep.Labels.Fraud, len(rep.Groups))
	}
	if rep.Seconds > 60 {
		t.Errorf("replay took %.1fs, want under a minute", rep.Seconds)
	}
	if q := rep.StepUpOrPause; q.Precision < 0.55 || q.Recall < 0.53 {
		t.Errorf("step_up or pause: precision %.3f recall %.3f; the starter rules regressed on FDH", q.Precision, q.Recall)
	}
	if q := rep.Pause; q.Precision < 0.85 || q.Recall < 0.25 {
		t.Errorf("pause: precision %.3f recall %.3f; the starter rules regressed on FDH", q.Precision, q.Recall)
	}
}
