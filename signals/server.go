package signals

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Capabilities are the schema features a ClickHouse server supports,
// decided by its version.
type Capabilities struct {
	Version        string
	LowCardinality bool // GA in 19.x (18.x needs an experimental setting)
	TTL            bool // table TTL from 19.6
	DateTime64     bool // from 20.1
}

// CapabilitiesOf returns the capabilities of a server version ("18.16.1",
// "24.3.2.23"). An unparsable version gets none of them.
func CapabilitiesOf(version string) Capabilities {
	c := Capabilities{Version: version}
	parts := strings.SplitN(version, ".", 3)
	if len(parts) < 2 {
		return c
	}
	major, err1 := strconv.Atoi(parts[0])
	minor, err2 := strconv.Atoi(parts[1])
	if err1 != nil || err2 != nil {
		return c
	}
	at := func(ma, mi int) bool { return major > ma || major == ma && minor >= mi }
	c.LowCardinality = at(19, 0)
	c.TTL = at(19, 6)
	c.DateTime64 = at(20, 1)
	return c
}

// Open connects to ClickHouse (lazily: the first query dials). The
// database need not exist yet.
func Open(cfg Config) (driver.Conn, error) {
	pw, err := cfg.password()
	if err != nil {
		return nil, err
	}
	tlsConf, err := cfg.tlsConfig()
	if err != nil {
		return nil, err
	}
	conn, err := clickhouse.Open(&clickhouse.Options{
		Addr:             cfg.Addrs(),
		Auth:             clickhouse.Auth{Database: "default", Username: cfg.User, Password: pw},
		DialContext:      dialer(time.Duration(cfg.DialTimeout), time.Duration(cfg.InsertTimeout), tlsConf),
		DialTimeout:      time.Duration(cfg.DialTimeout),
		ReadTimeout:      time.Duration(cfg.InsertTimeout),
		MaxOpenConns:     4,
		MaxIdleConns:     2,
		ConnMaxLifetime:  time.Hour,
		ConnOpenStrategy: clickhouse.ConnOpenInOrder,
		ClientInfo:       clickhouse.ClientInfo{Products: []struct{ Name, Version string }{{Name: "vigil-signals", Version: "1"}}},
	})
	if err != nil {
		return nil, fmt.Errorf("clickhouse: %w", err)
	}
	return conn, nil
}

// ServerVersion asks the server its version.
func ServerVersion(ctx context.Context, conn driver.Conn) (string, error) {
	var v string
	if err := conn.QueryRow(ctx, "SELECT version()").Scan(&v); err != nil {
		return "", fmt.Errorf("clickhouse version: %w", err)
	}
	return v, nil
}

// quoteIdent quotes a ClickHouse identifier (database names are validated
// to letters, digits and _ already; this is belt and braces).
func quoteIdent(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }
