package stream

import (
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/vigil-fraud/vigil/engine/stream/kafkatest"
)

// kafkaScript is the script that runs the test broker.
const kafkaScript = "../../deploy/kafka/kafka.sh"

// TestBrokerRestart restarts the broker under a running consumer: it
// recovers by itself, every event is decided, and the windows equal an
// in-process replay.
func TestBrokerRestart(t *testing.T) {
	addr := kafkaAddr(t)
	status, err := exec.Command(kafkaScript, "status").Output()
	if err != nil || strings.TrimSpace(string(status)) != addr {
		t.Skipf("the broker at %s is not the one %s runs: not restarting it", addr, kafkaScript)
	}
	cfg := testConfig(addr, "restart")
	createTopics(t, cfg)
	const n = 4000
	evs := testEvents(t, n, 37, 10*time.Millisecond)
	out := readTopic(t, addr, cfg.Topics.Decisions, 4)
	r := startConsumer(t, cfg, newEngine(t))
	produce(t, addr, cfg.Topics.Transactions, evs[:n/2])
	waitFor(t, 30*time.Second, "the first half's decisions", func() bool { return len(out.decisions(t)) == n/2 })

	// Other packages' tests on this broker (go test runs packages in
	// parallel) finish first and wait until it is back.
	unlock := kafkatest.Exclusive(t, addr)
	start := time.Now()
	cmd := exec.Command(kafkaScript, "restart-broker")
	cmd.Stderr = os.Stderr
	if testing.Verbose() {
		cmd.Stdout = os.Stderr
	}
	if err := cmd.Run(); err != nil {
		t.Fatalf("restart-broker: %v", err)
	}
	t.Logf("broker restarted in %s", time.Since(start).Round(time.Millisecond))
	produce(t, addr, cfg.Topics.Transactions, evs[n/2:])
	waitFor(t, 60*time.Second, "every decision after the restart", func() bool { return len(out.decisions(t)) == n })
	t.Logf("every event decided %s after the restart began", time.Since(start).Round(time.Millisecond))
	unlock()

	_, want := replay(t, evs)
	for id, ds := range out.decisions(t) {
		for _, d := range ds {
			if !sameDecision(&d.Decision, want[id]) {
				t.Errorf("event %s: decided %+v, the replay decided %+v", id, d.Decision, *want[id])
			}
		}
	}
	checkWindows(t, r.eng, evs)
}
