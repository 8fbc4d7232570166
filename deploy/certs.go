package deploy

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Certificate files written by WriteDevCerts in its directory.
const (
	CAFile     = "ca.pem"
	CAKeyFile  = "ca.key"
	ServerCert = "server.pem"
	ServerKey  = "server.key"
	RosterFile = "roster.txt"
)

// ParticipantFiles returns the certificate, key and token files of a
// participant written by WriteDevCerts.
func ParticipantFiles(dir, name string) (cert, key, token string) {
	return filepath.Join(dir, name+".pem"), filepath.Join(dir, name+".key"), filepath.Join(dir, name+".token")
}

// WriteDevCerts creates, in dir, a development certificate authority, a
// server certificate valid for hosts (DNS names or IP addresses), and a
// client certificate, key and random token for every participant, whose
// certificate common name is the participant's name; roster.txt lists the
// participants with their tokens. Keys are ECDSA P-256, private files
// mode 0600. It refuses to overwrite an existing CA, a participant listed
// twice, and a validity that is not positive (the certificates would be
// expired when written).
func WriteDevCerts(dir string, hosts, participants []string, validity time.Duration) error {
	if validity <= 0 {
		return fmt.Errorf("deploy: certs: validity %v is not positive: the certificates would be expired on arrival", validity)
	}
	if len(hosts) == 0 {
		return errors.New("deploy: certs: no server host names")
	}
	seen := make(map[string]bool, len(participants))
	for _, p := range participants {
		if !validName.MatchString(p) || p == "server" || p == "ca" {
			return fmt.Errorf("deploy: certs: invalid participant name %q", p)
		}
		if seen[p] {
			// Its second certificate and token would replace the first,
			// and serve refuses a roster naming it twice.
			return fmt.Errorf("deploy: certs: participant %q listed twice", p)
		}
		seen[p] = true
	}
	if _, err := os.Stat(filepath.Join(dir, CAFile)); err == nil {
		return fmt.Errorf("deploy: certs: %s already exists; choose another directory", filepath.Join(dir, CAFile))
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("deploy: certs: %w", err)
	}
	now := time.Now().Add(-time.Hour)
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("deploy: certs: %w", err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber: serial(), Subject: pkix.Name{CommonName: "fedcmi development CA"},
		NotBefore: now, NotAfter: time.Now().Add(validity),
		IsCA: true, BasicConstraintsValid: true, MaxPathLenZero: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return fmt.Errorf("deploy: certs: CA: %w", err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	if err := writePEM(filepath.Join(dir, CAFile), "CERTIFICATE", caDER, 0o644); err != nil {
		return err
	}
	if err := writeKey(filepath.Join(dir, CAKeyFile), caKey); err != nil {
		return err
	}
	leaf := func(cn string, usage x509.ExtKeyUsage, hosts []string, certFile, keyFile string) error {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return fmt.Errorf("deploy: certs: %w", err)
		}
		tmpl := &x509.Certificate{
			SerialNumber: serial(), Subject: pkix.Name{CommonName: cn},
			NotBefore: now, NotAfter: time.Now().Add(validity),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
		}
		for _, h := range hosts {
			if ip := net.ParseIP(h); ip != nil {
				tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
			} else {
				tmpl.DNSNames = append(tmpl.DNSNames, h)
			}
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			return fmt.Errorf("deploy: certs: %s: %w", cn, err)
		}
		if err := writePEM(certFile, "CERTIFICATE", der, 0o644); err != nil {
			return err
		}
		return writeKey(keyFile, key)
	}
	if err := leaf("fedcmi coordinator", x509.ExtKeyUsageServerAuth, hosts,
		filepath.Join(dir, ServerCert), filepath.Join(dir, ServerKey)); err != nil {
		return err
	}
	var roster strings.Builder
	roster.WriteString("# participant token [revoked]: the participants fedcmi serve accepts\n")
	for _, p := range participants {
		cert, key, tokenFile := ParticipantFiles(dir, p)
		if err := leaf(p, x509.ExtKeyUsageClientAuth, nil, cert, key); err != nil {
			return err
		}
		tok := make([]byte, 16)
		rand.Read(tok)
		token := hex.EncodeToString(tok)
		if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
			return fmt.Errorf("deploy: certs: %w", err)
		}
		fmt.Fprintf(&roster, "%s %s\n", p, token)
	}
	if err := os.WriteFile(filepath.Join(dir, RosterFile), []byte(roster.String()), 0o600); err != nil {
		return fmt.Errorf("deploy: certs: %w", err)
	}
	return nil
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	return n
}

func writePEM(path, kind string, der []byte, mode os.FileMode) error {
	b := pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der})
	if err := os.WriteFile(path, b, mode); err != nil {
		return fmt.Errorf("deploy: certs: %w", err)
	}
	return nil
}

func writeKey(path string, key *ecdsa.PrivateKey) error {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("deploy: certs: %w", err)
	}
	return writePEM(path, "PRIVATE KEY", der, 0o600)
}

func loadPool(caFile string) (*x509.CertPool, error) {
	b, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("deploy: CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("deploy: CA %s: no PEM certificate", caFile)
	}
	return pool, nil
}

// ServerTLS returns the coordinator's TLS configuration: its certificate,
// and mutual authentication of participants by certificates signed by the
// CA in caFile (TLS 1.3 only).
func ServerTLS(caFile, certFile, keyFile string) (*tls.Config, error) {
	pool, err := loadPool(caFile)
	if err != nil {
		return nil, err
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("deploy: server certificate: %w", err)
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert}, ClientCAs: pool,
		ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS13,
	}, nil
}

// ClientTLS returns a participant's TLS configuration: the coordinator must
// present a certificate signed by the CA in caFile, valid for serverName
// (empty: the host dialled); the participant presents certFile (empty: no
// certificate, which a coordinator refuses).
func ClientTLS(caFile, certFile, keyFile, serverName string) (*tls.Config, error) {
	pool, err := loadPool(caFile)
	if err != nil {
		return nil, err
	}
	c := &tls.Config{RootCAs: pool, ServerName: serverName, MinVersion: tls.VersionTLS13}
	if certFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("deploy: participant certificate: %w", err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}
