package main

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestProduceHTTP(t *testing.T) {
	var mu sync.Mutex
	var ids []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/score" || r.Header.Get("Authorization") != "Bearer vgl_test_key_0123456789" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		ids = append(ids, string(body))
		mu.Unlock()
		w.Write([]byte(`{"decision":"approve"}`))
	}))
	defer srv.Close()
	t.Setenv("VIGIL_API_KEY", "vgl_test_key_0123456789")

	var out, errb bytes.Buffer
	if code := dispatch([]string{"produce", "--to", "http", "--url", srv.URL, "--count", "50", "--rate", "0"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if len(ids) != 50 || !strings.Contains(out.String(), "sent 50 events") || !strings.Contains(out.String(), "200:50") {
		t.Fatalf("%d requests; output %q", len(ids), out.String())
	}

	file := filepath.Join(t.TempDir(), "day.jsonl")
	os.WriteFile(file, []byte(`{"id":"late","time":"2026-01-01T00:00:09Z","amount":1,"currency":"USD","card":{"token":"t"}}
{"id":"early","time":"2026-01-01T00:00:01Z","amount":1,"currency":"USD","card":{"token":"t"}}
`), 0o600)
	ids = nil
	out.Reset()
	if code := dispatch([]string{"produce", "--to", "http", "--url", srv.URL, "--replay", file, "--conns", "1"}, &out, &errb); code != 0 {
		t.Fatalf("replay: exit %d: %s", code, errb.String())
	}
	if len(ids) != 2 {
		t.Fatalf("replayed %d events", len(ids))
	}
}

func TestProduceUsageErrors(t *testing.T) {
	t.Setenv("VIGIL_API_KEY", "")
	for _, args := range [][]string{
		{"produce"}, // endless synthetic stream
		{"produce", "--to", "ftp", "--count", "1"},  // unknown sink
		{"produce", "--to", "http", "--count", "1"}, // no key
		{"produce", "--count", "1", "--fraud", "3"}, // bad generator config
	} {
		var out, errb bytes.Buffer
		if code := dispatch(args, &out, &errb); code == 0 {
			t.Errorf("%v: exit 0", args)
		}
	}
}
