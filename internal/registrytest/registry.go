package registrytest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ocifs/ocifs/internal/testenv"
	"golang.org/x/crypto/bcrypt"
)

// Binary is Debian's registry (package docker-registry).
const Binary = "/usr/bin/docker-registry"

// Options configure Start. The zero value is a plain-HTTP registry
// without authentication.
type Options struct {
	// TLS serves HTTPS with a self-signed certificate for 127.0.0.1.
	TLS bool
	// User and Password, if User is set, require htpasswd (basic) auth.
	User, Password string
	// ClientCert (with TLS) requires a client certificate signed by the
	// registry's CA; CertDir gets client.cert and client.key.
	ClientCert bool
}

// Registry is a running docker-registry.
type Registry struct {
	// Host is HOST:PORT, as it goes into references.
	Host string
	// URL is the base URL, http:// or https:// and Host.
	URL string
	// CertDir holds ca.crt, the certificate to trust (TLS only), laid
	// out for --cert-dir (containers-certs.d(5)).
	CertDir string
	// CAs is a pool holding the certificate (TLS only).
	CAs *x509.CertPool
	// User and Password are the credentials (htpasswd only).
	User, Password string
	// TLS reports whether the registry serves HTTPS.
	TLS bool
}

// Start runs docker-registry on 127.0.0.1 and a free port with its
// storage in t.TempDir(), waits until /v2/ answers and stops it in
// t.Cleanup. Without the binary the test is skipped, or fails in CI.
func Start(t testing.TB, opts Options) *Registry {
	t.Helper()
	if _, err := os.Stat(Binary); err != nil {
		testenv.Unavailable(t, "no %s (apt-get install docker-registry): %v", Binary, err)
	}
	dir := t.TempDir()
	port := freePort(t)
	r := &Registry{Host: fmt.Sprintf("127.0.0.1:%d", port), TLS: opts.TLS, User: opts.User, Password: opts.Password}
	scheme := "http"
	var tlsConf, authConf string
	if opts.TLS {
		scheme = "https"
		r.CertDir = filepath.Join(dir, "certs")
		cert, key := writeCert(t, r.CertDir, opts.ClientCert)
		r.CAs = x509.NewCertPool()
		pemData, _ := os.ReadFile(filepath.Join(r.CertDir, "ca.crt"))
		r.CAs.AppendCertsFromPEM(pemData)
		tlsConf = fmt.Sprintf("  tls:\n    certificate: %s\n    key: %s\n", cert, key)
		if opts.ClientCert {
			tlsConf += fmt.Sprintf("    clientcas:\n      - %s\n", filepath.Join(r.CertDir, "ca.crt"))
		}
	}
	if opts.User != "" {
		hash, err := bcrypt.GenerateFromPassword([]byte(opts.Password), bcrypt.MinCost)
		if err != nil {
			t.Fatalf("registrytest: bcrypt: %v", err)
		}
		htpasswd := filepath.Join(dir, "htpasswd")
		writeFile(t, htpasswd, []byte(opts.User+":"+string(hash)+"\n"))
		authConf = fmt.Sprintf("auth:\n  htpasswd:\n    realm: registrytest\n    path: %s\n", htpasswd)
	}
	r.URL = scheme + "://" + r.Host
	config := fmt.Sprintf(`version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
http:
  addr: %s
%s%s`, filepath.Join(dir, "storage"), r.Host, tlsConf, authConf)
	configPath := filepath.Join(dir, "config.yml")
	writeFile(t, configPath, []byte(config))

	logPath := filepath.Join(dir, "registry.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatalf("registrytest: %v", err)
	}
	defer logFile.Close()
	logs := func() string {
		data, _ := os.ReadFile(logPath)
		return string(data)
	}
	cmd := exec.Command(Binary, "serve", configPath)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// docker-registry reads REGISTRY_* variables as configuration:
	// REGISTRY_AUTH_FILE, the containers auth file, would turn into
	// "auth: file".
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "REGISTRY_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("registrytest: start %s: %v", Binary, err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		if t.Failed() {
			if l := logs(); l != "" {
				t.Logf("docker-registry log:\n%s", l)
			}
		}
	})

	client := r.Client()
	deadline := time.Now().Add(15 * time.Second)
	for {
		select {
		case <-exited:
			t.Fatalf("registrytest: docker-registry exited: %v\n%s", waitErr, logs())
		default:
		}
		resp, err := client.Get(r.URL + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusUnauthorized {
				return r
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("registrytest: %s/v2/ not answering after 15s: %v\n%s", r.URL, err, logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Client returns an HTTP client that trusts the registry's certificate.
func (r *Registry) Client() *http.Client {
	return &http.Client{Transport: r.Transport(), Timeout: 10 * time.Second}
}

// Transport returns an HTTP transport that trusts the registry's
// certificate.
func (r *Registry) Transport() *http.Transport {
	tr := &http.Transport{DisableCompression: true}
	if r.CAs != nil {
		tr.TLSClientConfig = &tls.Config{RootCAs: r.CAs}
		if c, err := tls.LoadX509KeyPair(filepath.Join(r.CertDir, "client.cert"), filepath.Join(r.CertDir, "client.key")); err == nil {
			tr.TLSClientConfig.Certificates = []tls.Certificate{c}
		}
	}
	return tr
}

// Creds returns USER:PASS for --creds, or "" without auth.
func (r *Registry) Creds() string {
	if r.User == "" {
		return ""
	}
	return r.User + ":" + r.Password
}

// Push copies src (any skopeo source, e.g. "oci:DIR:TAG") to
// docker://HOST/dst with skopeo, trusting the registry's certificate
// and using its credentials, and returns the pushed reference without
// the transport, "HOST/dst".
func (r *Registry) Push(t testing.TB, src, dst string) string {
	t.Helper()
	skopeo, err := exec.LookPath("skopeo")
	if err != nil {
		testenv.Unavailable(t, "no skopeo: %v", err)
	}
	args := []string{"copy", "--quiet"}
	if r.TLS {
		args = append(args, "--dest-cert-dir", r.CertDir)
	} else {
		args = append(args, "--dest-tls-verify=false")
	}
	if c := r.Creds(); c != "" {
		args = append(args, "--dest-creds", c)
	}
	ref := r.Host + "/" + dst
	args = append(args, src, "docker://"+ref)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, skopeo, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("skopeo %v: %v\n%s", args, err, out)
	}
	return ref
}

// freePort returns a TCP port free on 127.0.0.1 a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("registrytest: find a free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// writeCert writes a self-signed CA certificate valid for 127.0.0.1
// and localhost into dir as ca.crt, and the server's copy and key
// outside it; it returns the server's certificate and key paths. With
// client, it also writes client.cert and client.key, signed by the CA.
func writeCert(t testing.TB, dir string, client bool) (certPath, keyPath string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("registrytest: generate key: %v", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "registrytest"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatalf("registrytest: create certificate: %v", err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatalf("registrytest: marshal key: %v", err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("registrytest: %v", err)
	}
	writeFile(t, filepath.Join(dir, "ca.crt"), certPEM)
	certPath = filepath.Join(filepath.Dir(dir), "server.crt")
	keyPath = filepath.Join(filepath.Dir(dir), "server.key")
	writeFile(t, certPath, certPEM)
	writeFile(t, keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}))
	if client {
		ca, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatalf("registrytest: parse certificate: %v", err)
		}
		ckey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatalf("registrytest: generate key: %v", err)
		}
		ctmpl := &x509.Certificate{
			SerialNumber: big.NewInt(time.Now().UnixNano() + 1),
			Subject:      pkix.Name{CommonName: "registrytest client"},
			NotBefore:    time.Now().Add(-time.Hour),
			NotAfter:     time.Now().Add(24 * time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		}
		cder, err := x509.CreateCertificate(rand.Reader, ctmpl, ca, &ckey.PublicKey, key)
		if err != nil {
			t.Fatalf("registrytest: create client certificate: %v", err)
		}
		ckeyDER, err := x509.MarshalECPrivateKey(ckey)
		if err != nil {
			t.Fatalf("registrytest: marshal key: %v", err)
		}
		writeFile(t, filepath.Join(dir, "client.cert"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cder}))
		writeFile(t, filepath.Join(dir, "client.key"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: ckeyDER}))
	}
	return certPath, keyPath
}

func writeFile(t testing.TB, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatalf("registrytest: %v", err)
	}
}
