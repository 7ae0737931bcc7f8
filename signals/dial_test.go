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
