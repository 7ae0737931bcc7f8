package engine

import "fmt"

// CheckEnvName checks the setting key, which names an environment variable
// holding a secret: letters, digits and _, not starting with a digit. A
// value that is not such a name is not repeated in the error — it is often
// the secret itself, pasted in the wrong place, and errors reach logs.
func CheckEnvName(key, name string) error {
	if name == "" || validEnvName(name) {
		return nil
	}
	return fmt.Errorf("%s: not an environment variable name (letters, digits and _); the value is not repeated here in case it is the secret itself: put a secret in a file or in the variable this key names", key)
}

func validEnvName(s string) bool { return len(s) <= 128 && IsIdentifier(s) }

// IsIdentifier reports whether s is a plain identifier: letters, digits
// and _, not empty, not starting with a digit (environment variable names,
// ClickHouse database names).
func IsIdentifier(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}
