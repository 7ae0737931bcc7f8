package signals

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-fraud/vigil/engine"
)

// A write to a peer that stops reading fails after the timeout instead of
// blocking for minutes.
func TestDialerBoundsWrites(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() { // accept, never read
		c, err := ln.Accept()
		if err == nil {
			defer c.Close()
			time.Sleep(5 * time.Second)
		}
	}()
	conn, err := dialer(time.Second, 200*time.Millisecond, nil)(context.Background(), ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	buf := make([]byte, 1<<20)
	start := time.Now()
	for time.Since(start) < 4*time.Second {
		if _, err = conn.Write(buf); err != nil {
			break
		}
	}
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("write error %v after %s, want a deadline", err, time.Since(start))
	}
}

// The dialer speaks TLS when configured (verifying the server against the
// given roots, with the address's host as the server name).
func TestDialerTLS(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	defer srv.Close()
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())
	addr := srv.Listener.Addr().String()
	conn, err := dialer(time.Second, time.Second, &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12})(context.Background(), addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "GET / HTTP/1.0\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, _ := io.ReadAll(conn)
	if len(resp) < 12 || string(resp[:12]) != "HTTP/1.0 200" {
		t.Fatalf("response %q", resp)
	}
	// an untrusted server is refused
	if _, err := dialer(time.Second, time.Second, &tls.Config{MinVersion: tls.VersionTLS12})(context.Background(), addr); err == nil {
		t.Fatal("connected to a server signed by an unknown authority")
	}
}

// A server that accepts connections but never answers the handshake: the
// driver's handshake ignores the context, so shutdown is bounded by
// drain_timeout + dial_timeout (as documented), not by drain_timeout
// alone, and every row is spilled for the next start.
func TestShutdownBoundWithSilentServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() { // accept, never answer
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	cfg := testConfig(t)
	cfg.Addr = ln.Addr().String()
	cfg.DialTimeout = engine.Duration(700 * time.Millisecond)
	cfg.Queue.DrainTimeout = engine.Duration(300 * time.Millisecond)
	w, err := NewWriter(cfg, quietLog(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	w.minBackoff, w.maxBackoff = 5*time.Millisecond, 20*time.Millisecond
	stop := startWriter(t, w)
	for i := 0; i < 150; i++ {
		w.Put(testRecord(i))
	}
	time.Sleep(200 * time.Millisecond) // a batch in memory, an insert waiting for its handshake
	start := time.Now()
	stop()
	bound := time.Duration(cfg.Queue.DrainTimeout) + time.Duration(cfg.DialTimeout)
	took := time.Since(start)
	if took > bound+500*time.Millisecond {
		t.Errorf("shutdown took %v, want at most drain_timeout + dial_timeout = %v (+ slack)", took, bound)
	}
	t.Logf("shutdown took %v (drain_timeout %v)", took, time.Duration(cfg.Queue.DrainTimeout))
	if n := w.spill.rows(); n != 150 {
		t.Errorf("%d rows spilled at shutdown, want 150", n)
	}
}
