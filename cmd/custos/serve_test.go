package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestConfig_Validate(t *testing.T) {
	for _, tc := range []struct {
		name  string
		args  []string
		env   map[string]string
		field string
	}{
		// Ensure plain HTTP is refused on a non-loopback address.
		{"ErrPublicPlainHTTP", []string{"--addr", "0.0.0.0:8080"}, nil, "--addr"},
		{"ErrEmptyHostPlainHTTP", []string{"--addr", ":8080"}, nil, "--addr"},
		{"ErrAddrNotHostPort", []string{"--addr", "localhost"}, nil, "--addr"},
		{"ErrHalfTLS", []string{"--tls-cert", "c.pem"}, nil, "--tls-cert/--tls-key"},
		{"ErrSync", []string{"--sync", "sometimes"}, nil, "--sync"},
		{"ErrLogLevel", []string{"--log-level", "loud"}, nil, "--log-level"},
		{"ErrEnvAddr", nil, map[string]string{"CUSTOS_ADDR": "0.0.0.0:1"}, "--addr"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := NewMain(nil, nil)
			err := m.ParseFlags(tc.args, func(k string) string { return tc.env[k] })
			var ce *ConfigError
			if !errors.As(err, &ce) || ce.Field != tc.field {
				t.Fatalf("err=%v, want a ConfigError on %s", err, tc.field)
			}
		})
	}

	// Ensure flags beat the environment, and --insecure-http allows a public address.
	t.Run("OK", func(t *testing.T) {
		m := NewMain(nil, nil)
		env := map[string]string{"CUSTOS_ADDR": "127.0.0.1:9999", "CUSTOS_DATA": "/tmp/x"}
		if err := m.ParseFlags([]string{"--data", "/tmp/y", "--addr", "0.0.0.0:80", "--insecure-http"}, func(k string) string { return env[k] }); err != nil {
			t.Fatal(err)
		}
		if got, want := m.Config.DataDir, "/tmp/y"; got != want {
			t.Fatalf("data=%q, want %q", got, want)
		}
	})

	// Ensure CUSTOS_KEEPER_FILE reads the keeper URL from a file.
	t.Run("KeeperFile", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "keeper")
		if err := os.WriteFile(p, []byte("base64key://abc\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		m := NewMain(nil, nil)
		env := map[string]string{"CUSTOS_KEEPER_FILE": p}
		if err := m.ParseFlags(nil, func(k string) string { return env[k] }); err != nil {
			t.Fatal(err)
		}
		if got, want := m.Config.Keeper, "base64key://abc"; got != want {
			t.Fatalf("keeper=%q, want %q", got, want)
		}
	})
}

// mustSelfSigned writes a self-signed certificate for 127.0.0.1.
func mustSelfSigned(tb testing.TB) (certFile, keyFile string, pool *x509.CertPool) {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "custos test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	dir := tb.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	_ = os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	_ = os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

func TestServe_TLS(t *testing.T) {
	// Ensure --tls-cert/--tls-key serve HTTPS with TLS 1.2 as the minimum, with HSTS.
	cert, key, pool := mustSelfSigned(t)
	m := NewMain(&syncBuffer{}, &syncBuffer{})
	if err := m.ParseFlags([]string{"--addr", "127.0.0.1:0", "--data", filepath.Join(t.TempDir(), "d"), "--tls-cert", cert, "--tls-key", key}, func(string) string { return "" }); err != nil {
		t.Fatal(err)
	}
	if err := m.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if !strings.HasPrefix(m.URL(), "https://") {
		t.Fatalf("url=%s", m.URL())
	}
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	resp, err := c.Get(m.URL() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Strict-Transport-Security") == "" {
		t.Fatalf("status=%d hsts=%q", resp.StatusCode, resp.Header.Get("Strict-Transport-Security"))
	}
	old := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}}} // #nosec G402 -- proving the server refuses old TLS
	if _, err := old.Get(m.URL() + "/healthz"); err == nil {
		t.Fatal("TLS 1.1 handshake succeeded")
	}
}

func TestServe_DataDirModes(t *testing.T) {
	// Ensure the data dir is 0700 and the database, KEK and owner key files are 0600.
	e := MustStartE2E(t)
	if fi, err := os.Stat(e.Data); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("data dir: %v %v", fi, err)
	}
	for _, f := range []string{"custos.db", "kek.key", "owner.key"} {
		if fi, err := os.Stat(filepath.Join(e.Data, f)); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v %v", f, fi, err)
		}
	}
}
