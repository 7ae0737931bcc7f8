package rules

import "embed"

// DefaultFS holds the embedded starter ruleset under DefaultDir.
//
//go:embed default/*.yaml
var DefaultFS embed.FS

// DefaultDir is the directory of DefaultFS holding the starter ruleset.
const DefaultDir = "default"
