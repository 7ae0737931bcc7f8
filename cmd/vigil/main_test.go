package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// buildVigil builds the binary once per test run.
func buildVigil(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "vigil")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startServe starts `vigil serve` with args and env added to the
// environment and returns it with its banner (up to "Stop with Ctrl-C")
// and its stderr.
func startServe(t *testing.T, bin string, args []string, env ...string) (*exec.Cmd, string, *lockedBuffer) {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"serve"}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	stdout, _ := cmd.StdoutPipe()
	stderr := new(lockedBuffer) // read while the server runs
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	sc := bufio.NewScanner(stdout)
	var banner strings.Builder
	deadline := time.AfterFunc(20*time.Second, func() { cmd.Process.Kill() })
	for sc.Scan() {
		banner.WriteString(sc.Text() + "\n")
		if strings.Contains(sc.Text(), "Stop with Ctrl-C") {
			break
		}
	}
	deadline.Stop()
	go io.Copy(io.Discard, stdout)
	return cmd, banner.String(), stderr
}

// TestServeAsANewUser starts `vigil serve` with no configuration, runs the
// printed curl command's request, and stops it with SIGTERM.
func TestServeAsANewUser(t *testing.T) {
	bin := buildVigil(t)
	cmd, banner, stderr := startServe(t, bin, []string{"--listen", freeAddr(t)}, "VIGIL_API_KEY=")
	m := regexp.MustCompile(`curl -s -H "Authorization: Bearer (vgl_\S+)" (\S+) \\\n\s+-d '(.*)'`).FindStringSubmatch(banner)
	if m == nil {
		t.Fatalf("no curl command in the banner:\n%s\nstderr:\n%s", banner, stderr.String())
	}
	req, _ := http.NewRequest("POST", m[2], strings.NewReader(m[3]))
	req.Header.Set("Authorization", "Bearer "+m[1])
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Decision string `json:"decision"`
		Ruleset  string `json:"ruleset"`
	}
	json.NewDecoder(resp.Body).Decode(&d)
	resp.Body.Close()
	if resp.StatusCode != 200 || d.Decision != "approve" || !strings.HasPrefix(d.Ruleset, "starter@") {
		t.Fatalf("the printed command got %d %+v", resp.StatusCode, d)
	}
	// Labels need signals, which are off: a clear 404, after authentication.
	for _, key := range []string{m[1], ""} {
		req, _ = http.NewRequest("POST", strings.Replace(m[2], "/v1/score", "/v1/labels", 1), strings.NewReader(`{"labels":[]}`))
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		resp, err = http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		want, code := 404, `"code":"signals_off"`
		if key == "" {
			want, code = 401, `"code":"unauthorized"`
		}
		if resp.StatusCode != want || !strings.Contains(string(body), code) {
			t.Errorf("labels with signals off, key %q: %d %s", key, resp.StatusCode, body)
		}
	}
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("no exit after SIGTERM")
	}
	if !strings.Contains(stderr.String(), `"msg":"vigil stopped"`) {
		t.Errorf("no clean stop logged:\n%s", stderr.String())
	}
}

// TestBannerCommandRuns pastes the banner's curl command into a shell, as
// a user would, with the key in VIGIL_API_KEY: it must score (the key's
// variable expands).
func TestBannerCommandRuns(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("no curl")
	}
	const secret = "a-long-enough-banner-secret"
	_, banner, stderr := startServe(t, buildVigil(t), []string{"--listen", freeAddr(t)}, "VIGIL_API_KEY="+secret)
	i := strings.Index(banner, "curl ")
	j := strings.Index(banner, "Add ?explain")
	if i < 0 || j < i {
		t.Fatalf("no curl command in the banner:\n%s\nstderr:\n%s", banner, stderr.String())
	}
	if strings.Contains(banner, secret) {
		t.Fatalf("the banner shows the secret:\n%s", banner)
	}
	sh := exec.Command("sh", "-c", banner[i:j])
	sh.Env = append(os.Environ(), "VIGIL_API_KEY="+secret)
	out, err := sh.Output()
	if err != nil || !strings.Contains(string(out), `"decision":"approve"`) {
		t.Fatalf("%s: %v: %s", banner[i:j], err, out)
	}
}

func TestServeRefusesPublicAddressWithoutKey(t *testing.T) {
	var out, errb bytes.Buffer
	t.Setenv("VIGIL_API_KEY", "")
	code := dispatch([]string{"serve", "--listen", "0.0.0.0:0", "--check-config"}, &out, &errb)
	if code != 1 || !strings.Contains(errb.String(), "refusing to listen on 0.0.0.0:0 without an API key") {
		t.Fatalf("code %d: %s", code, errb.String())
	}
	t.Setenv("VIGIL_API_KEY", "a-long-enough-test-secret")
	if code := dispatch([]string{"serve", "--listen", "0.0.0.0:0", "--check-config"}, &out, &errb); code != 0 {
		t.Fatalf("with VIGIL_API_KEY: code %d: %s", code, errb.String())
	}
}

func TestCheckConfig(t *testing.T) {
	var out, errb bytes.Buffer
	t.Setenv("VIGIL_API_KEY", "")
	if code := dispatch([]string{"serve", "--check-config"}, &out, &errb); code != 0 {
		t.Fatalf("code %d: %s", code, errb.String())
	}
	if !strings.Contains(out.String(), "configuration ok") || !strings.Contains(out.String(), "no API key (a development key is generated at start-up)") {
		t.Errorf("output: %s", out.String())
	}
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("rules:\n  - name: x\n    when: amount >\n    action: pause\n    score: 10\n    reason: X\n"), 0o600)
	out.Reset()
	errb.Reset()
	if code := dispatch([]string{"serve", "--check-config", "--rules", dir}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "bad.yaml:3:") {
		t.Fatalf("bad rules: code %d: %s", code, errb.String())
	}
	// An argument that is not a flag is refused, not ignored with the
	// flags after it (this would otherwise start serving).
	errb.Reset()
	if code := dispatch([]string{"serve", dir, "--check-config"}, &out, &errb); code != 2 || !strings.Contains(errb.String(), "unexpected argument") {
		t.Fatalf("stray argument: code %d: %s", code, errb.String())
	}
	// TLS files that exist but hold no certificate fail the check, as they
	// would fail serve.
	garbage := filepath.Join(dir, "garbage.pem")
	os.WriteFile(garbage, []byte("not a certificate\n"), 0o600)
	cfg := filepath.Join(dir, "vigil.yaml")
	os.WriteFile(cfg, []byte("tls:\n  cert_file: "+garbage+"\n  key_file: "+garbage+"\n"), 0o600)
	errb.Reset()
	if code := dispatch([]string{"serve", "--config", cfg, "--check-config"}, &out, &errb); code != 1 ||
		!strings.Contains(errb.String(), "tls: failed to find any PEM data") || strings.Contains(errb.String(), "tls: tls:") {
		t.Fatalf("bad TLS files: code %d: %s", code, errb.String())
	}
}

// TestServeKeysFileEmptyEntry: a keys file with an empty entry is an
// error, not a crash.
func TestServeKeysFileEmptyEntry(t *testing.T) {
	keys := filepath.Join(t.TempDir(), "keys.yaml")
	os.WriteFile(keys, []byte("keys:\n  -\n"), 0o600)
	var out, errb bytes.Buffer
	if code := dispatch([]string{"serve", "--api-keys-file", keys, "--check-config"}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "key 1: empty entry") {
		t.Fatalf("code %d: %s", code, errb.String())
	}
}

func TestKeysGenerate(t *testing.T) {
	var out, errb bytes.Buffer
	if code := dispatch([]string{"keys", "generate", "--id", "svc", "--scopes", "score,metrics"}, &out, &errb); code != 0 {
		t.Fatalf("code %d: %s", code, errb.String())
	}
	if !regexp.MustCompile(`(?s)# vgl_\S{40,}.*- id: svc\n    sha256: [0-9a-f]{64}\n    scopes: \[score, metrics\]`).MatchString(out.String()) {
		t.Errorf("output:\n%s", out.String())
	}
	if code := dispatch([]string{"keys", "generate", "--id", "svc", "--scopes", "root"}, &out, &errb); code != 2 {
		t.Errorf("unknown scope accepted")
	}
	// An id that would not read back from the keys file as written.
	for _, id := range []string{"x y: [z]", "#ops", "-a", strings.Repeat("a", 65)} {
		if code := dispatch([]string{"keys", "generate", "--id", id}, &out, &errb); code != 2 {
			t.Errorf("id %q accepted", id)
		}
	}
	for _, id := range []string{"payments-api", "svc.eu/1", "ops@team:2"} {
		if code := dispatch([]string{"keys", "generate", "--id", id}, &out, &errb); code != 0 {
			t.Errorf("id %q refused: %s", id, errb.String())
		}
	}
}

// TestKeysArguments: vigil keys refuses what it does not take, with a
// usage error (exit 2) that names it, and prints no key then.
func TestKeysArguments(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		want string // in stderr, or in stdout for exit 0
	}{
		{[]string{"keys", "generate", "--id", "a", "--scopes", "score", "extra"}, 2, `unexpected argument "extra"`},
		{[]string{"keys", "generate", "extra", "--id", "a"}, 2, `unexpected argument "extra"`},
		{[]string{"keys", "generate", "--id", "a", "--", "--scopes"}, 2, `unexpected argument "--scopes"`},
		{[]string{"keys", "generate"}, 2, "--id is required"},
		{[]string{"keys"}, 2, "usage: vigil keys generate"},
		{[]string{"keys", "list"}, 2, `unknown command "list"`},
		{[]string{"keys", "--id", "a"}, 2, `unknown command "--id"`},
		{[]string{"keys", "-h"}, 0, "usage: vigil keys generate"},
		{[]string{"keys", "generate", "--id", "a"}, 0, "- id: a\n"},
		// every command that takes flags only refuses a stray argument
		// (and the flags after it) before it does anything
		{[]string{"signals", "migrate", "extra", "--addr", "127.0.0.1:1"}, 2, `vigil signals migrate: unexpected argument "extra"`},
		{[]string{"signals", "status", "--addr", "127.0.0.1:1", "extra"}, 2, `vigil signals status: unexpected argument "extra"`},
		{[]string{"tune", "7d"}, 2, `vigil tune: unexpected argument "7d"`},
		{[]string{"signals", "retention", "--days", "-5", "--addr", "127.0.0.1:1"}, 2, `--days -5: want 0 (keep forever) or more`},
		{[]string{"signals", "status", "--days", "5", "--addr", "127.0.0.1:1"}, 2, `--days is for retention only`},
		{[]string{"produce", "extra"}, 2, `vigil produce: unexpected argument "extra"`},
		{[]string{"serve", "extra", "--check-config"}, 2, `vigil serve: unexpected argument "extra"`},
	} {
		var out, errb bytes.Buffer
		code := dispatch(tc.args, &out, &errb)
		got := errb.String()
		if tc.code == 0 {
			got = out.String()
		}
		if code != tc.code || !strings.Contains(got, tc.want) || tc.code != 0 && out.Len() > 0 {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want exit %d with %q", tc.args, code, out.String(), errb.String(), tc.code, tc.want)
		}
	}
}

// TestHelpExitsZero: -h on any command prints its usage and exits 0 (it
// was asked for); a bad flag exits 2.
func TestHelpExitsZero(t *testing.T) {
	for _, args := range [][]string{{"serve", "-h"}, {"replay", "--help"}, {"produce", "-h"}, {"tune", "-h"}, {"keys", "generate", "-h"},
		{"rules", "check", "-h"}, {"rules", "test", "-h"}, {"signals", "status", "-h"}} {
		var out, errb bytes.Buffer
		if code := dispatch(args, &out, &errb); code != 0 || errb.Len()+out.Len() == 0 {
			t.Errorf("%v: code %d, no usage printed: %q", args, code, errb.String())
		}
	}
	var out, errb bytes.Buffer
	if code := dispatch([]string{"serve", "--no-such-flag"}, &out, &errb); code != 2 {
		t.Errorf("a bad flag: code %d", code)
	}
}

func TestVersion(t *testing.T) {
	var out, errb bytes.Buffer
	if code := dispatch([]string{"version"}, &out, &errb); code != 0 || !strings.HasPrefix(out.String(), "vigil ") {
		t.Errorf("code %d: %q", code, out.String())
	}
}

// TestServeAddressInUse: a taken address says so and how to pick another.
func TestServeAddressInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	t.Setenv("VIGIL_API_KEY", "a-long-enough-test-secret")
	var out, errb bytes.Buffer
	if code := dispatch([]string{"serve", "--listen", ln.Addr().String()}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "choose another address with --listen") {
		t.Errorf("code %d: %s", code, errb.String())
	}
}
