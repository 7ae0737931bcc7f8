package features

import (
	"fmt"
	"time"
)

// Day is 24 hours, the unit written d in windows (7d).
const Day = 24 * time.Hour

// ParseDuration parses a whole number and one unit: 90s, 10m, 1h, 7d. No
// fractions, no compound durations, at most ten years.
func ParseDuration(s string) (time.Duration, error) {
	if len(s) < 2 {
		return 0, fmt.Errorf("bad duration %q: want a number and a unit (s, m, h, d) such as 10m", s)
	}
	var unit time.Duration
	switch s[len(s)-1] {
	case 's':
		unit = time.Second
	case 'm':
		unit = time.Minute
	case 'h':
		unit = time.Hour
	case 'd':
		unit = Day
	}
	n := int64(0)
	for _, c := range s[:len(s)-1] {
		if c < '0' || c > '9' || n > 1e9 {
			unit = 0
			break
		}
		n = n*10 + int64(c-'0')
	}
	if unit == 0 || n == 0 {
		return 0, fmt.Errorf("bad duration %q: want a positive whole number and a unit (s, m, h, d) such as 10m", s)
	}
	d := time.Duration(n) * unit
	if d > 3650*Day {
		return 0, fmt.Errorf("bad duration %q: longer than ten years", s)
	}
	return d, nil
}

// FormatDuration writes d in the largest unit that divides it (7d, 1h, 10m).
func FormatDuration(d time.Duration) string {
	switch {
	case d%Day == 0:
		return fmt.Sprintf("%dd", d/Day)
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	}
	return fmt.Sprintf("%ds", d/time.Second)
}
