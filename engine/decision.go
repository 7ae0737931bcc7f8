// Package engine is vigil's scoring pipeline — decode, deduplicate, compute
// features, evaluate rules, decide — and its HTTP API.
package engine

import (
	"github.com/vigil-fraud/vigil/rules"
)

// Decision is the answer to one scored transaction.
type Decision struct {
	ID        string       `json:"id"`
	Decision  rules.Action `json:"decision"`
	Score     int          `json:"score"`
	Reasons   []Reason     `json:"reasons"`
	Ruleset   string       `json:"ruleset"`
	LatencyUS int64        `json:"latency_us"`
	// Replayed is true when the decision was answered from the
	// recent-decisions store because the id was scored before.
	Replayed bool `json:"replayed,omitempty"`
	// Explain is set with ?explain=true.
	Explain *Explain `json:"explain,omitempty"`
}

// Reason is one counting rule hit.
type Reason struct {
	Rule    string `json:"rule"`
	Code    string `json:"code"`
	Message string `json:"message,omitempty"`
}

// Explain shows what the rules saw.
type Explain struct {
	// Features are the values of every feature the rules could read; null
	// when missing.
	Features map[string]any `json:"features"`
	// Hits are the counting hits with their actions and scores.
	Hits []rules.Hit `json:"hits"`
	// Ignored are shadow and out-of-rollout hits: recorded, not counted.
	Ignored []rules.Hit `json:"ignored"`
	// Errors are rules that failed to evaluate (counted as not firing).
	Errors []string `json:"errors,omitempty"`
}
