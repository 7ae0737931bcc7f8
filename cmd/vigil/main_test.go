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

// TestServeAsANewUser starts `vigil serve` with no configuration, runs the
// printed curl command's request, and stops it with SIGTERM.
func TestServeAsANewUser(t *testing.T) {
	bin := buildVigil(t)
	addr := freeAddr(t)
	cmd := exec.Command(bin, "serve", "--listen", addr)
	cmd.Env = append(os.Environ(), "VIGIL_API_KEY=")
	stdout, _ := cmd.StdoutPipe()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	// Read the banner up to the curl command.
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
	m := regexp.MustCompile(`curl -s -H 'Authorization: Bearer (vgl_\S+)' (\S+) \\\n\s+-d '(.*)'`).FindStringSubmatch(banner.String())
	if m == nil {
		t.Fatalf("no curl command in the banner:\n%s\nstderr:\n%s", banner.String(), stderr.String())
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
	if code := dispatch([]string{"serve", "--check-config"}, &out, &errb); code != 0 {
		t.Fatalf("code %d: %s", code, errb.String())
	}
	if !strings.Contains(out.String(), "configuration ok") {
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
}
