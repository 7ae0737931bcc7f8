package engine

import (
	"strings"
	"testing"
)

func TestCheckEnvName(t *testing.T) {
	f := func(name string, ok bool) {
		t.Helper()
		err := CheckEnvName("x.password_env", name)
		if (err == nil) != ok {
			t.Errorf("CheckEnvName(%q) = %v, want ok=%t", name, err, ok)
		}
		if err != nil && name != "" && strings.Contains(err.Error(), name) {
			t.Errorf("CheckEnvName(%q) repeats the value: %v", name, err)
		}
	}
	f("", true) // unset
	f("VIGIL_KAFKA_PASSWORD", true)
	f("_x1", true)
	f("lower_case", true)
	f("1ABC", false)
	f("S3cret Passw0rd!", false)
	f("a-b", false)
	f(strings.Repeat("A", 129), false)
}
