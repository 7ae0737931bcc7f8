package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/vigil-fraud/vigil/engine/event"
	"github.com/vigil-fraud/vigil/features"
	"github.com/vigil-fraud/vigil/rules"
)

// cmdRulesExplain runs `vigil rules explain`: it replays the events of a
// file through a fresh features engine and shows, for the last one (or
// each with --all), every rule's value and the values it read.
func cmdRulesExplain(args []string, stdout, stderr io.Writer) int {
	fset := flag.NewFlagSet("rules explain", flag.ContinueOnError)
	fset.SetOutput(stderr)
	featuresFile := fset.String("features", "", "feature definitions file (default: embedded)")
	eventFile := fset.String("event", "", "file with one JSON event, a JSON array of events or JSON lines (required)")
	asJSON := fset.Bool("json", false, "print JSON")
	all := fset.Bool("all", false, "explain every event, not only the last")
	geoip := fset.String("geoip", "", "MaxMind-format IP geolocation database for the features engine")
	pos, err := parseArgs(fset, args)
	if err != nil {
		return flagExit(err)
	}
	if *eventFile == "" {
		fmt.Fprintln(stderr, "usage: vigil rules explain [DIR] --event FILE [--features FILE] [--json] [--all]")
		return exitUsage
	}
	_, feats, _, set, code := loadRuleset("explain", pos, *featuresFile, *geoip, stderr)
	if code != exitOK {
		return code
	}
	data, err := os.ReadFile(*eventFile)
	if err != nil {
		fmt.Fprintln(stderr, "vigil rules explain:", err)
		return exitInvalid
	}
	events, err := decodeEvents(data, time.Now())
	if err != nil {
		fmt.Fprintf(stderr, "vigil rules explain: %s: %v\n", *eventFile, err)
		return exitInvalid
	}
	obs, err := feats.newEngine()
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitInvalid
	}
	vec := features.NewVector(set.Schema)
	var out []any
	for i, ev := range events {
		obs.Observe(ev, vec)
		if !*all && i < len(events)-1 {
			continue
		}
		var env rules.Env
		env.Set(ev, vec)
		x := set.Explain(&env)
		if *asJSON {
			out = append(out, struct {
				Event string    `json:"event"`
				Time  time.Time `json:"time"`
				*rules.Explanation
			}{ev.ID, ev.Time, x})
			continue
		}
		printExplanation(stdout, ev, x)
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		var v any = out
		if len(out) == 1 {
			v = out[0]
		}
		if err := enc.Encode(v); err != nil {
			fmt.Fprintln(stderr, "vigil rules explain:", err)
			return exitInvalid
		}
	}
	return exitOK
}

func printExplanation(w io.Writer, ev *event.Event, x *rules.Explanation) {
	var codes []string
	for _, h := range x.Hits {
		codes = append(codes, h.Code)
	}
	fmt.Fprintf(w, "event %s at %s: %s, score %d, ruleset %s\n", ev.ID, ev.Time.Format(time.RFC3339), x.Decision, x.Score, x.Ruleset)
	if len(codes) > 0 {
		fmt.Fprintf(w, "reasons: %s\n", strings.Join(codes, ", "))
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RULE\tVALUE\tRESULT\tACTION\tSCORE\tREADS")
	for _, t := range x.Rules {
		value, result := fmt.Sprint(t.Value), "-"
		switch {
		case t.Error != "":
			value = "error"
		case t.Value && t.Excluded != "":
			result = t.Excluded
		case t.Value:
			result = "counted"
		}
		var reads []string
		for _, r := range t.Reads {
			v := "missing"
			if r.Value != nil {
				v = fmt.Sprint(r.Value)
				if s, ok := r.Value.(string); ok {
					v = fmt.Sprintf("%q", s)
				}
			}
			reads = append(reads, r.Name+"="+v)
		}
		detail := strings.Join(reads, " ")
		if t.Error != "" {
			detail += " error: " + strings.ReplaceAll(t.Error, "\n", " ")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\n", t.Rule, value, result, t.Action, t.Score, detail)
	}
	tw.Flush()
	fmt.Fprintln(w)
}

// decodeEvents reads one JSON event, a JSON array of events, or JSON
// lines, each checked as POST /v1/score checks it.
func decodeEvents(data []byte, now time.Time) ([]*event.Event, error) {
	data = bytes.TrimSpace(data)
	var raws []json.RawMessage
	switch {
	case len(data) > 0 && data[0] == '[':
		if err := json.Unmarshal(data, &raws); err != nil {
			return nil, err
		}
	default:
		dec := json.NewDecoder(bytes.NewReader(data))
		for {
			var raw json.RawMessage
			if err := dec.Decode(&raw); err == io.EOF {
				break
			} else if err != nil {
				return nil, err
			}
			raws = append(raws, raw)
		}
	}
	if len(raws) == 0 {
		return nil, fmt.Errorf("no event")
	}
	var out []*event.Event
	for i, raw := range raws {
		ev, err := event.Decode(raw, now)
		if err != nil {
			return nil, fmt.Errorf("event %d: %w", i+1, err)
		}
		out = append(out, ev)
	}
	return out, nil
}
