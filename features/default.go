package features

import _ "embed"

// DefaultFile is the embedded default feature definition file.
//
//go:embed default.yaml
var DefaultFile []byte

// DefaultFileName is the name DefaultFile reports in errors.
const DefaultFileName = "embedded:features/default.yaml"
