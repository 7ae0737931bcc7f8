package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/vigil-fraud/vigil/engine/stream/kafkatest"
	"github.com/vigil-fraud/vigil/signals"
)

// TestServeWithKafkaAndSignals runs `vigil serve` as an operator would,
// with the kafka: and signals: sections of one config file pointing at the
// real Kafka and ClickHouse that make test starts: it must become ready,
// decide over HTTP and from the transactions topic, produce the Kafka
// decision, write both signals rows to ClickHouse, take a label, and stop
// cleanly on SIGTERM. It runs next to the Kafka tests that restart the
// shared broker, so every wait allows for a broker outage: vigil must ride
// it out.
func TestServeWithKafkaAndSignals(t *testing.T) {
	brokers, chAddr := os.Getenv("VIGIL_TEST_KAFKA"), os.Getenv("VIGIL_TEST_CLICKHOUSE")
	if brokers == "" || chAddr == "" {
		t.Skip("VIGIL_TEST_KAFKA and VIGIL_TEST_CLICKHOUSE not set: make test starts both (deploy/services.sh up)")
	}
	kafkatest.Shared(t, brokers) // engine/stream's broker-restart test waits
	var b [5]byte
	rand.Read(b[:])
	suffix := hex.EncodeToString(b[:])
	db, txTopic, decTopic := "vigil_serve_"+suffix, "tx_"+suffix, "dec_"+suffix
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "vigil.yaml")
	os.WriteFile(cfgPath, []byte(fmt.Sprintf(`
listen: %s
log: {level: debug}
kafka:
  brokers: [%s]
  group: g_%s
  topics: {transactions: %s, decisions: %s, dead_letter: %s.dlq, labels: %s.labels, partitions: 2, replication_factor: 1}
signals:
  enabled: true
  addr: %s
  database: %s
  ip_hash_key_env: TEST_IP_KEY
  queue: {flush_interval: 100ms}
  spill: {dir: %s}
`, freeAddr(t), brokers, suffix, txTopic, decTopic, txTopic, txTopic, chAddr, db, filepath.Join(dir, "spill"))), 0o600)
	t.Cleanup(func() {
		cfg := signals.DefaultConfig()
		cfg.Addr = chAddr
		if c, err := signals.Open(cfg); err == nil {
			c.Exec(context.Background(), "DROP DATABASE IF EXISTS "+db)
			c.Close()
		}
	})
	const key = "test-key-0123456789abcdef"
	bin := buildVigil(t)
	cmd := exec.Command(bin, "serve", "--config", cfgPath)
	cmd.Env = append(os.Environ(), "VIGIL_API_KEY="+key, "VIGIL_FINGERPRINT_KEY=fingerprint-key-for-tests", "TEST_IP_KEY=ip-hash-key-for-tests-0123")
	stdout, _ := cmd.StdoutPipe()
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	sc := bufio.NewScanner(stdout)
	var base string
	for sc.Scan() {
		if _, rest, ok := strings.Cut(sc.Text(), "vigil is listening on "); ok {
			base, _, _ = strings.Cut(rest, " ")
			break
		}
	}
	go io.Copy(io.Discard, stdout)
	if base == "" {
		t.Fatalf("no banner; stderr:\n%s", stderr.String())
	}
	call := func(method, path, body string) (int, []byte) {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, out
	}
	waitFor(t, 120*time.Second, "readyz 200", func() bool { c, _ := call("GET", "/readyz", ""); return c == 200 }, &stderr)

	// over HTTP
	code, out := call("POST", "/v1/score", `{"id":"http_1","amount":250000,"currency":"USD","card":{"token":"tok_w1","country":"US"},"account":{"id":"acct_w1"},"device":{"ip":"203.0.113.7"}}`)
	if code != 200 || !bytes.Contains(out, []byte(`"decision":"step_up"`)) {
		t.Fatalf("score: %d %s", code, out)
	}
	// from the transactions topic, sent with `vigil produce`
	evFile := filepath.Join(dir, "events.jsonl")
	os.WriteFile(evFile, []byte(`{"id":"kafka_1","time":"2026-11-26T08:00:00Z","amount":1500000,"currency":"USD","card":{"token":"tok_w2","country":"US"},"account":{"id":"acct_w2"}}`+"\n"), 0o600)
	var pout, perr bytes.Buffer
	waitFor(t, 120*time.Second, "vigil produce", func() bool { // a resend is harmless: same id, same decision
		pout.Reset()
		perr.Reset()
		return dispatch([]string{"produce", "--brokers", brokers, "--topic", txTopic, "--replay", evFile, "--rate", "0"}, &pout, &perr) == 0
	}, &stderr)
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: strings.Split(brokers, ","), Topic: decTopic, GroupID: "reader_" + suffix, StartOffset: kafka.FirstOffset, MaxWait: 200 * time.Millisecond})
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	msg, err := r.ReadMessage(ctx)
	if err != nil {
		t.Fatalf("no decision on %s: %v\nstderr:\n%s", decTopic, err, stderr.String())
	}
	var dec struct{ ID, Decision, Ruleset string }
	if err := json.Unmarshal(msg.Value, &dec); err != nil || dec.ID != "kafka_1" || dec.Decision != "pause" || !strings.HasPrefix(dec.Ruleset, "starter@") {
		t.Fatalf("decision %s (%v)", msg.Value, err)
	}
	// 503 "retry later" until the writer has migrated the new database
	waitFor(t, 120*time.Second, "labels accepted", func() bool {
		code, _ := call("POST", "/v1/labels", `{"labels":[{"event_id":"http_1","label":"confirmed_fraud","source":"test"}]}`)
		return code == 200
	}, &stderr)

	// and one on the labels topic
	// acks=all: the default (none) may lose the message silently
	lw := &kafka.Writer{Addr: kafka.TCP(strings.Split(brokers, ",")...), Topic: txTopic + ".labels", BatchTimeout: time.Millisecond, RequiredAcks: kafka.RequireAll}
	waitFor(t, 120*time.Second, "a label written to Kafka", func() bool {
		return lw.WriteMessages(context.Background(), kafka.Message{Value: []byte(`{"labels":[{"event_id":"kafka_1","label":"chargeback"}]}`)}) == nil
	}, &stderr)
	lw.Close()

	// both decisions in ClickHouse, IP stored only as its keyed hash
	cfg := signals.DefaultConfig()
	cfg.Addr, cfg.Database = chAddr, db
	conn, err := signals.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var rows, withIPHash, labels uint64
	waitFor(t, 120*time.Second, "2 signals rows", func() bool {
		row := conn.QueryRow(context.Background(), "SELECT count(), countIf(ip_hash != '') FROM "+db+".signals WHERE (event_id = 'http_1' AND source = 'http') OR (event_id = 'kafka_1' AND source = 'kafka')")
		return row.Scan(&rows, &withIPHash) == nil && rows == 2
	}, &stderr)
	if withIPHash != 1 {
		t.Errorf("rows with an IP hash: %d, want 1", withIPHash)
	}
	waitFor(t, 120*time.Second, "labels from the API and the topic", func() bool {
		return conn.QueryRow(context.Background(), "SELECT count() FROM "+db+".labels WHERE event_id IN ('http_1', 'kafka_1')").Scan(&labels) == nil && labels == 2
	}, &stderr)
	var leaked uint64
	conn.QueryRow(context.Background(), "SELECT count() FROM "+db+".signals WHERE ip_hash LIKE '%203.0.113%'").Scan(&leaked)
	if leaked != 0 {
		t.Error("a raw IP reached ClickHouse")
	}

	// A label feeds the label_rate features: a transaction labelled fraud
	// counts in its merchant's fraud rate for events 7 days later (the
	// default definitions' delay), once the label is known.
	t1, known, t2 := time.Now().Add(-10*24*time.Hour), time.Now().Add(-9*24*time.Hour), time.Now().Add(-2*24*time.Hour)
	tx := func(id string, at time.Time) string {
		return fmt.Sprintf(`{"id":%q,"time":%q,"amount":5000,"currency":"USD","card":{"token":"tok_%s"},"merchant":{"id":"m_lbl_%s"}}`,
			id, at.UTC().Format(time.RFC3339), id, suffix)
	}
	if code, out := call("POST", "/v1/score", tx("lbl_1", t1)); code != 200 {
		t.Fatalf("score lbl_1: %d %s", code, out)
	}
	waitFor(t, 120*time.Second, "the signal row of lbl_1", func() bool {
		var n uint64
		return conn.QueryRow(context.Background(), "SELECT count() FROM "+db+".signals WHERE event_id = 'lbl_1'").Scan(&n) == nil && n == 1
	}, &stderr)
	if code, out := call("POST", "/v1/labels", fmt.Sprintf(`{"labels":[{"event_id":"lbl_1","label":"chargeback","labelled_at":%q}]}`, known.UTC().Format(time.RFC3339))); code != 200 {
		t.Fatalf("label lbl_1: %d %s\nstderr:\n%s", code, out, stderr.String())
	}
	code, out = call("POST", "/v1/score?explain=true", tx("lbl_2", t2))
	var later struct {
		Decision string
		Explain  struct{ Features map[string]any }
	}
	if err := json.Unmarshal(out, &later); code != 200 || err != nil {
		t.Fatalf("score lbl_2: %d %s", code, out)
	}
	if r := later.Explain.Features["merchant_fraud_rate_7d"]; r != float64(1) || later.Decision != "pause" {
		t.Errorf("after the label: merchant_fraud_rate_7d = %v, decision %s; want 1 and pause (compromised_merchant)", r, later.Decision)
	}

	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("no exit after SIGTERM\n%s", stderr.String())
	}
	for _, want := range []string{`"msg":"signals writer stopped"`, `"msg":"vigil stopped"`} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("no %s in the log:\n%s", want, stderr.String())
		}
	}
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool, log *lockedBuffer) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; vigil's log:\n%s", what, log.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// lockedBuffer is a bytes.Buffer safe to write from exec's copier while
// the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
