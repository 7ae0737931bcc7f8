package stream

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-fraud/vigil/engine/stream/loadgen"
)

// scorerEnv carries the configuration of a scorer process (JSON).
const scorerEnv = "VIGIL_STREAM_SCORER"

// TestScorerProcess is not a test: it is the scorer process that
// TestRestartAfterSIGKILL starts (this test binary, run again) and kills.
// It runs a consumer on the default features and rules and serves
// GET /ready and POST /probe (the features of an event, scored with
// explain) on a loopback port that it prints as "SCORER host:port".
func TestScorerProcess(t *testing.T) {
	spec := os.Getenv(scorerEnv)
	if spec == "" {
		t.Skip("the scorer process of TestRestartAfterSIGKILL")
	}
	var cfg Config
	if err := json.Unmarshal([]byte(spec), &cfg); err != nil {
		t.Fatal(err)
	}
	eng := newEngine(t)
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	c, err := New(cfg, eng, Options{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ready", func(w http.ResponseWriter, r *http.Request) {
		if !c.Ready() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})
	mux.HandleFunc("POST /probe", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		json.NewEncoder(w).Encode(explainFeatures(t, eng, body))
	})
	go http.Serve(ln, mux)
	fmt.Printf("SCORER %s\n", ln.Addr())
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := c.Run(ctx); err != nil {
		t.Fatal(err)
	}
}

// scorer is a scorer process.
type scorer struct {
	cmd    *exec.Cmd
	addr   string
	exited chan error
}

func startScorer(t *testing.T, cfg Config) *scorer {
	t.Helper()
	spec, _ := json.Marshal(cfg)
	cmd := exec.Command(os.Args[0], "-test.run=^TestScorerProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), scorerEnv+"="+string(spec))
	stdout, _ := cmd.StdoutPipe()
	var stderr bytes.Buffer
	if testing.Verbose() {
		cmd.Stderr = os.Stderr
	} else {
		cmd.Stderr = &stderr
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &scorer{cmd: cmd, exited: make(chan error, 1)}
	addrc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), "SCORER "); ok {
				addrc <- a
			}
		}
	}()
	go func() { s.exited <- cmd.Wait() }()
	t.Cleanup(func() { cmd.Process.Kill() })
	select {
	case s.addr = <-addrc:
	case err := <-s.exited:
		t.Fatalf("scorer process exited: %v\n%s", err, stderr.String())
	case <-time.After(30 * time.Second):
		t.Fatal("scorer process did not start")
	}
	return s
}

func (s *scorer) ready() bool {
	resp, err := http.Get("http://" + s.addr + "/ready")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func (s *scorer) probe(t testing.TB, ev []byte) map[string]any {
	t.Helper()
	resp, err := http.Post("http://"+s.addr+"/probe", "application/json", bytes.NewReader(ev))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestRestartAfterSIGKILL kills a scorer process mid-stream and starts
// another: every event gets a decision, a redelivered one the same
// decision, and the windows of the new process equal an in-process replay
// (nothing lost, nothing counted twice).
func TestRestartAfterSIGKILL(t *testing.T) {
	addr := kafkaAddr(t)
	cfg := testConfig(addr, "sigkill")
	cfg.CommitInterval = d(time.Second)
	createTopics(t, cfg)
	const n = 8000
	evs := testEvents(t, n, 23, 10*time.Millisecond)
	out := readTopic(t, addr, cfg.Topics.Decisions, 4)

	produced := make(chan error, 1)
	go func() { // about 4,000 events/s for 2 s
		sink := loadgen.NewKafkaSink([]string{addr}, cfg.Topics.Transactions, nil)
		defer sink.Close()
		recs := make([]loadgen.Record, len(evs))
		for i, ev := range evs {
			recs[i] = loadgen.Record{Key: ev.Key, JSON: ev.JSON}
		}
		_, err := loadgen.Run(context.Background(), &loadgen.ReplaySource{Records: recs}, sink, loadgen.Limits{Rate: 4000, Batch: 100})
		produced <- err
	}()

	a := startScorer(t, cfg)
	waitFor(t, 60*time.Second, "the first scorer's decisions", func() bool { return len(out.snapshot()) >= n/2 })
	a.cmd.Process.Signal(syscall.SIGKILL)
	<-a.exited
	killedAt := len(out.decisions(t))
	b := startScorer(t, cfg)
	if err := <-produced; err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "a decision for every event", func() bool { return len(out.decisions(t)) == n })
	waitFor(t, 20*time.Second, "the second scorer's readiness", b.ready)

	_, want := replay(t, evs)
	got := out.decisions(t)
	again := 0
	for _, ev := range evs {
		ds := got[ev.ID]
		if len(ds) == 0 {
			t.Fatalf("event %s: no decision", ev.ID)
		}
		again += len(ds) - 1
		for _, d := range ds {
			if !sameDecision(&d.Decision, want[ev.ID]) {
				t.Errorf("event %s: decided %+v, the replay decided %+v", ev.ID, d.Decision, *want[ev.ID])
			}
		}
	}
	t.Logf("killed after %d of %d events decided; %d decisions produced again after the restart", killedAt, n, again)
	ref, _ := replay(t, evs)
	for _, p := range probes(evs, 1000) {
		sameFeatures(t, "after restart", b.probe(t, p), explainFeatures(t, ref, p))
	}

	b.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-b.exited:
		if err != nil {
			t.Errorf("scorer after SIGTERM: %v", err)
		}
	case <-time.After(time.Duration(cfg.CloseTimeout) + 5*time.Second):
		t.Error("scorer did not stop within its close timeout")
	}
}
