package features

import (
	"fmt"
	"hash/maphash"
	"net/netip"
	"sync"

	"github.com/oschwald/maxminddb-golang/v2"
)

// geoInfo is what vigil reads about an IP address from MaxMind-format
// databases.
type geoInfo struct {
	country  string  // ISO 3166-1 alpha-2, "" unknown
	asn      uint32  // 0 unknown
	lat, lon float64 // valid when located
	located  bool
}

// geoRecord is the part of a GeoIP2/GeoLite2 City, Country or ASN record
// vigil decodes (a combined database may carry all of it).
type geoRecord struct {
	Country struct {
		ISOCode string `maxminddb:"iso_code"`
	} `maxminddb:"country"`
	RegisteredCountry struct {
		ISOCode string `maxminddb:"iso_code"`
	} `maxminddb:"registered_country"`
	Location struct {
		Latitude  *float64 `maxminddb:"latitude"`
		Longitude *float64 `maxminddb:"longitude"`
	} `maxminddb:"location"`
	ASN uint32 `maxminddb:"autonomous_system_number"`
}

// geoDB looks IP addresses up in one or two databases, through a
// fixed-size cache of results (direct-mapped on a keyed hash of the address
// text; a slot holds the latest address that mapped to it).
type geoDB struct {
	readers []*maxminddb.Reader
	seed    maphash.Seed
	mask    uint64
	locks   [64]sync.Mutex
	slots   []geoSlot
	m       *metrics
}

type geoSlot struct {
	key  uint64
	used bool
	info geoInfo
}

func openGeo(paths []string, cacheSize int, m *metrics) (*geoDB, error) {
	g := &geoDB{seed: maphash.MakeSeed(), m: m}
	for _, p := range paths {
		if p == "" {
			continue
		}
		r, err := maxminddb.Open(p)
		if err != nil {
			g.close()
			return nil, fmt.Errorf("geo database %s: %w", p, err)
		}
		g.readers = append(g.readers, r)
	}
	if len(g.readers) == 0 {
		return nil, nil
	}
	size := 1
	for size < cacheSize {
		size <<= 1
	}
	g.mask = uint64(size - 1)
	g.slots = make([]geoSlot, size)
	return g, nil
}

func (g *geoDB) close() {
	if g == nil {
		return
	}
	for _, r := range g.readers {
		_ = r.Close()
	}
}

// lookup returns what the databases know of ip ("" or unparsable: nothing).
func (g *geoDB) lookup(ip string) geoInfo {
	if ip == "" {
		return geoInfo{}
	}
	h := maphash.String(g.seed, ip)
	i := h & g.mask
	mu := &g.locks[i%uint64(len(g.locks))]
	mu.Lock()
	if s := &g.slots[i]; s.used && s.key == h {
		info := s.info
		mu.Unlock()
		g.m.geoHits.Add(1)
		return info
	}
	mu.Unlock()
	info := g.find(ip)
	mu.Lock()
	g.slots[i] = geoSlot{key: h, used: true, info: info}
	mu.Unlock()
	g.m.geoMisses.Add(1)
	return info
}

func (g *geoDB) find(ip string) geoInfo {
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		return geoInfo{}
	}
	var info geoInfo
	for _, r := range g.readers {
		var rec geoRecord
		if err := r.Lookup(addr.Unmap()).Decode(&rec); err != nil {
			g.m.geoErrors.Add(1)
			continue
		}
		if info.country == "" {
			c := rec.Country.ISOCode
			if c == "" {
				c = rec.RegisteredCountry.ISOCode
			}
			info.country = internCountry(c)
		}
		if info.asn == 0 {
			info.asn = rec.ASN
		}
		if !info.located && rec.Location.Latitude != nil && rec.Location.Longitude != nil {
			info.lat, info.lon, info.located = *rec.Location.Latitude, *rec.Location.Longitude, true
		}
	}
	return info
}

// countryCodes interns the 676 two-letter codes so that cached results do
// not keep decoder buffers alive and compare cheaply.
var countryCodes = func() []string {
	out := make([]string, 26*26)
	for i := range out {
		out[i] = string([]byte{byte('A' + i/26), byte('A' + i%26)})
	}
	return out
}()

func internCountry(c string) string {
	if len(c) == 2 && c[0] >= 'A' && c[0] <= 'Z' && c[1] >= 'A' && c[1] <= 'Z' {
		return countryCodes[int(c[0]-'A')*26+int(c[1]-'A')]
	}
	return c
}
