package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/vigil-fraud/vigil/engine/stream/kafkatest"
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

// TestProduceUsesConfigTopic: with --config, produce writes to the config's
// transactions topic (where vigil serve --config reads), unless --topic is
// given. Real broker.
func TestProduceUsesConfigTopic(t *testing.T) {
	broker := os.Getenv("VIGIL_TEST_KAFKA")
	if broker == "" {
		t.Skip("VIGIL_TEST_KAFKA not set: make test starts the broker (deploy/services.sh up)")
	}
	kafkatest.Shared(t, broker)
	var b [5]byte
	rand.Read(b[:])
	fromConfig, fromFlag := "produce_cfg_"+hex.EncodeToString(b[:]), "produce_flag_"+hex.EncodeToString(b[:])
	cfg := filepath.Join(t.TempDir(), "vigil.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf("kafka:\n  brokers: [%s]\n  topics: {transactions: %s}\n", broker, fromConfig)), 0o600)
	client := &kafka.Client{Addr: kafka.TCP(broker), Timeout: 10 * time.Second}
	t.Cleanup(func() {
		client.DeleteTopics(context.Background(), &kafka.DeleteTopicsRequest{Topics: []string{fromConfig, fromFlag}})
	})
	for _, tc := range []struct {
		args  []string
		topic string
		n     int64
	}{
		{[]string{"--count", "20"}, fromConfig, 20},
		{[]string{"--count", "7", "--topic", fromFlag}, fromFlag, 7},
	} {
		var out, errb bytes.Buffer
		args := append([]string{"produce", "--config", cfg, "--rate", "0", "--partitions", "1"}, tc.args...)
		if code := dispatch(args, &out, &errb); code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, errb.String())
		}
		if !strings.Contains(errb.String(), "topic "+tc.topic) {
			t.Errorf("%v: stderr does not name topic %s: %s", args, tc.topic, errb.String())
		}
		res, err := client.ListOffsets(context.Background(), &kafka.ListOffsetsRequest{
			Topics: map[string][]kafka.OffsetRequest{tc.topic: {kafka.LastOffsetOf(0)}}})
		if err != nil {
			t.Fatal(err)
		}
		if p := res.Topics[tc.topic]; len(p) != 1 || p[0].Error != nil || p[0].LastOffset != tc.n {
			t.Errorf("%v: topic %s holds %+v, want %d messages", args, tc.topic, p, tc.n)
		}
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
