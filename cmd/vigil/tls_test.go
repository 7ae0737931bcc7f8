package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testCA issues certificates for the TLS tests.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert, key, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue returns a leaf certificate and key in PEM: a server's for
// 127.0.0.1, or a client's.
func (ca *testCA) issue(t *testing.T, name string, server bool) (certPEM, keyPEM []byte) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	if server {
		tmpl.ExtKeyUsage, tmpl.IPAddresses = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, []net.IP{net.ParseIP("127.0.0.1")}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

// TestServeMutualTLS: with tls.client_ca_file, the health checks answer
// without a client certificate (probes, load balancers); every other
// endpoint needs one signed by that CA, on top of its API key; a
// certificate of another CA fails the handshake.
func TestServeMutualTLS(t *testing.T) {
	dir := t.TempDir()
	ca, rogue := newTestCA(t, "vigil test CA"), newTestCA(t, "rogue CA")
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	srvCert, srvKey := ca.issue(t, "vigil", true)
	cliCert, cliKey := ca.issue(t, "checkout", false)
	rogueCert, rogueKey := rogue.issue(t, "intruder", false)
	addr := freeAddr(t)
	cfg := write("vigil.yaml", []byte(fmt.Sprintf("listen: %s\ntls: {cert_file: %s, key_file: %s, client_ca_file: %s}\n",
		addr, write("server.pem", srvCert), write("server.key", srvKey), write("clients-ca.pem", ca.pem))))
	const key = "a-long-enough-mtls-test-key"
	_, banner, stderr := startServe(t, buildVigil(t), []string{"--config", cfg}, "VIGIL_API_KEY="+key)
	if !strings.Contains(banner, "https://"+addr) || !strings.Contains(banner, "--cert CLIENT.pem --key CLIENT.key") {
		t.Fatalf("banner:\n%s\nstderr:\n%s", banner, stderr.String())
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca.pem)
	// client presents the certificate whatever CAs the server asks for
	// (Go's client would otherwise send none that the server does not name).
	client := func(certPEM, keyPEM []byte) *http.Client {
		c := &tls.Config{RootCAs: roots}
		if certPEM != nil {
			pair, err := tls.X509KeyPair(certPEM, keyPEM)
			if err != nil {
				t.Fatal(err)
			}
			c.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &pair, nil }
		}
		return &http.Client{Transport: &http.Transport{TLSClientConfig: c}, Timeout: 10 * time.Second}
	}
	const tx = `{"id":"tx_mtls","amount":100,"currency":"USD","card":{"token":"tok_m"}}`
	for _, tc := range []struct {
		name              string
		client            *http.Client
		method, path, key string
		status            int
		body              string // a substring; "" for a failed handshake
	}{
		{"health without a certificate", client(nil, nil), "GET", "/healthz", "", 200, `"ok"`},
		{"readiness without a certificate", client(nil, nil), "GET", "/readyz", "", 200, ""},
		{"score without a certificate", client(nil, nil), "POST", "/v1/score", key, 401, `"client_certificate_required"`},
		{"metrics without a certificate", client(nil, nil), "GET", "/metrics", key, 401, `"client_certificate_required"`},
		{"reload without a certificate", client(nil, nil), "POST", "/-/reload", key, 401, `"client_certificate_required"`},
		{"openapi without a certificate", client(nil, nil), "GET", "/v1/openapi.json", key, 401, `"client_certificate_required"`},
		{"an added route (labels) without a certificate", client(nil, nil), "POST", "/v1/labels", key, 401, `"client_certificate_required"`},
		{"labels with a certificate", client(cliCert, cliKey), "POST", "/v1/labels", key, 404, `"signals_off"`},
		{"score with a certificate", client(cliCert, cliKey), "POST", "/v1/score", key, 200, `"decision":"approve"`},
		{"a certificate needs a key too", client(cliCert, cliKey), "POST", "/v1/score", "", 401, `"unauthorized"`},
		{"another CA's certificate", client(rogueCert, rogueKey), "GET", "/healthz", "", 0, ""},
		{"another CA's certificate, scoring", client(rogueCert, rogueKey), "POST", "/v1/score", key, 0, ""},
	} {
		req, _ := http.NewRequest(tc.method, "https://"+addr+tc.path, strings.NewReader(tx))
		if tc.key != "" {
			req.Header.Set("Authorization", "Bearer "+tc.key)
		}
		resp, err := tc.client.Do(req)
		if tc.status == 0 {
			if err == nil {
				resp.Body.Close()
				t.Errorf("%s: %d, want a failed handshake", tc.name, resp.StatusCode)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status || !strings.Contains(string(body), tc.body) {
			t.Errorf("%s: %d %s, want %d with %q", tc.name, resp.StatusCode, body, tc.status, tc.body)
		}
	}
}
