package consensus

import (
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"time"
)

// Credentials are the TLS settings of one node. Every node derives the same
// certificate authority key from the cluster secret (HKDF, its own label,
// so it is independent of the heartbeat key) and signs a fresh key of its
// own at start. Peers accept only certificates from that authority: a
// machine without the secret can neither join nor read the Raft traffic
// (TLS 1.3, mutual authentication).
type Credentials struct {
	Server *tls.Config
	Client *tls.Config
}

// NewCredentials derives the cluster authority and issues this node's
// certificate.
func NewCredentials(cluster, node string, secret []byte) (*Credentials, error) {
	if len(secret) == 0 {
		return nil, fmt.Errorf("raft tls: empty cluster secret")
	}
	seed, err := hkdf.Key(sha256.New, secret, nil, "vigil raft ca v1 "+cluster, ed25519.SeedSize)
	if err != nil {
		return nil, fmt.Errorf("raft tls: derive key: %w", err)
	}
	caKey := ed25519.NewKeyFromSeed(seed)
	serverName := "vigil-raft." + cluster
	ca := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "vigil cluster " + cluster},
		NotBefore:             time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC),
		NotAfter:              time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, caKey.Public(), caKey)
	if err != nil {
		return nil, fmt.Errorf("raft tls: authority: %w", err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, fmt.Errorf("raft tls: authority: %w", err)
	}
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("raft tls: node key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("raft tls: serial: %w", err)
	}
	now := time.Now()
	leaf := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: node},
		DNSNames:     []string{serverName},
		NotBefore:    now.Add(-24 * time.Hour), // tolerate skewed clocks
		NotAfter:     now.Add(100 * 365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, caCert, pub, caKey)
	if err != nil {
		return nil, fmt.Errorf("raft tls: node certificate: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	cert := tls.Certificate{Certificate: [][]byte{leafDER}, PrivateKey: key}
	return &Credentials{
		Server: &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert},
			ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool},
		Client: &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert},
			RootCAs: pool, ServerName: serverName},
	}, nil
}
