package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestServeReloadsFeatures runs `vigil serve` with its own features file
// and rules, then edits both as an analyst would: a new feature and a rule
// reading it go live on POST /-/reload, the card's count goes on from
// where it was, the new feature starts with this event; a broken features
// file is refused and everything stays as it was.
func TestServeReloadsFeatures(t *testing.T) {
	bin := buildVigil(t)
	dir := t.TempDir()
	ffile, rdir := filepath.Join(dir, "features.yaml"), filepath.Join(dir, "rules")
	if err := os.Mkdir(rdir, 0o700); err != nil {
		t.Fatal(err)
	}
	write := func(path, s string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	const defs = "features:\n  - {name: card_count, entity: card.token, aggregate: count, windows: [1h]}\n"
	write(ffile, defs)
	write(filepath.Join(rdir, "velocity.yaml"), "rules:\n  - {name: velocity, when: card_count_1h > 3, action: pause, score: 90, reason: VELOCITY}\n")
	addr := freeAddr(t)
	_, _, stderr := startServe(t, bin, []string{"--listen", addr, "--features", ffile, "--rules", rdir}, "VIGIL_API_KEY=k_test_reload_0123456789")
	call := func(method, path, body string) (int, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest(method, "http://"+addr+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer k_test_reload_0123456789")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		var out map[string]any
		if err := json.Unmarshal(raw, &out); err != nil {
			t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, raw)
		}
		return resp.StatusCode, out
	}
	score := func(i int, merchant string) map[string]any {
		t.Helper()
		code, d := call("POST", "/v1/score?explain=true", fmt.Sprintf(
			`{"id":"tx_%d","time":"2026-11-22T10:0%d:00Z","amount":1000,"currency":"USD","card":{"token":"tok_1"},"merchant":{"id":"%s"}}`, i, i, merchant))
		if code != 200 {
			t.Fatalf("score %d: %d %v\n%s", i, code, d, stderr)
		}
		return d
	}
	feature := func(d map[string]any, name string) any {
		return d["explain"].(map[string]any)["features"].(map[string]any)[name]
	}
	for i := 1; i <= 3; i++ {
		score(i, "m_1")
	}
	write(ffile, defs+"  - {name: card_merchants, entity: card.token, aggregate: distinct, field: merchant.id, windows: [1h]}\n")
	write(filepath.Join(rdir, "merchants.yaml"), "rules:\n  - {name: merchants, when: card_merchants_1h >= 2, action: step_up, score: 40, reason: MERCHANTS}\n")
	if code, out := call("POST", "/-/reload", ""); code != 200 || out["status"] != "reloaded" || fmt.Sprint(out["features_fresh"]) != "[card_merchants_1h]" {
		t.Fatalf("reload: %d %v\n%s", code, out, stderr)
	}
	d := score(4, "m_2")
	if feature(d, "card_count_1h") != 4.0 || feature(d, "card_merchants_1h") != 1.0 || d["decision"] != "pause" {
		t.Errorf("after the reload: %v", d)
	}
	if !strings.Contains(stderr.String(), `"features reloaded; these features start with empty windows`) ||
		!strings.Contains(stderr.String(), `"fresh":["card_merchants_1h"]`) {
		t.Errorf("the reload does not say which features start empty:\n%s", stderr)
	}
	write(ffile, "features:\n  - {name: card_count, entity: card.token, aggregate: count, windows: [1h], windwos: [2h]}\n")
	code, out := call("POST", "/-/reload", "")
	msg, _ := out["error"].(map[string]any)["message"].(string)
	if code != 422 || !strings.Contains(msg, ffile+":2:") || !strings.Contains(msg, `unknown key "windwos"`) {
		t.Errorf("broken features file: %d %v", code, out)
	}
	d = score(5, "m_3")
	if feature(d, "card_count_1h") != 5.0 || feature(d, "card_merchants_1h") != 2.0 {
		t.Errorf("after a refused reload: %v", d)
	}
}
