package signals

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"time"
)

// dialer connects to ClickHouse (TLS when tlsConf is set) and bounds every
// write on the connection by timeout: the driver bounds reads
// (ReadTimeout) and an INSERT's Send by its context, but not the writes of
// a Flush (one block of an INSERT), which a server that stops reading
// would otherwise block for the kernel's TCP retry time (minutes).
func dialer(dialTimeout, timeout time.Duration, tlsConf *tls.Config) func(ctx context.Context, addr string) (net.Conn, error) {
	d := &net.Dialer{Timeout: dialTimeout}
	return func(ctx context.Context, addr string) (net.Conn, error) {
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, err
		}
		if tlsConf != nil {
			c := tlsConf.Clone()
			if c.ServerName == "" { // as tls.Dial does
				if host, _, err := net.SplitHostPort(addr); err == nil {
					c.ServerName = host
				}
			}
			tc := tls.Client(conn, c)
			hctx, cancel := context.WithTimeout(ctx, dialTimeout)
			err := tc.HandshakeContext(hctx)
			cancel()
			if err != nil {
				conn.Close()
				return nil, fmt.Errorf("tls handshake with %s: %w", addr, err)
			}
			conn = tc
		}
		return &writeDeadlineConn{Conn: conn, timeout: timeout}, nil
	}
}

// writeDeadlineConn sets a write deadline before every write.
type writeDeadlineConn struct {
	net.Conn
	timeout time.Duration
}

func (c *writeDeadlineConn) Write(p []byte) (int, error) {
	if err := c.Conn.SetWriteDeadline(time.Now().Add(c.timeout)); err != nil {
		return 0, err
	}
	return c.Conn.Write(p)
}
