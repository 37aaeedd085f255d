package relay

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"
)

// Security is how the relay reaches an existing cluster.
type Security struct {
	TLS           bool
	CAFile        string
	CertFile      string
	KeyFile       string
	SkipVerify    bool
	SASLMechanism string // plain, scram-sha-256, scram-sha-512
	SASLUsername  string
	SASLPassword  string
}

// Dialer builds a kafka-go dialer (for readers) with the same settings.
func (s Security) Dialer() (*kafka.Dialer, error) {
	t, err := s.Transport()
	if err != nil {
		return nil, err
	}
	return &kafka.Dialer{Timeout: 10 * time.Second, DualStack: true, TLS: t.TLS, SASLMechanism: t.SASL}, nil
}

// Transport builds the kafka-go transport for s.
func (s Security) Transport() (*kafka.Transport, error) {
	t := &kafka.Transport{DialTimeout: 5 * time.Second, IdleTimeout: 30 * time.Second, MetadataTTL: 15 * time.Second}
	if s.TLS || s.CAFile != "" || s.CertFile != "" {
		cfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: s.SkipVerify}
		if s.CAFile != "" {
			pem, err := os.ReadFile(s.CAFile)
			if err != nil {
				return nil, fmt.Errorf("TLS CA file: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("TLS CA file %s holds no PEM certificate", s.CAFile)
			}
			cfg.RootCAs = pool
		}
		if s.CertFile != "" || s.KeyFile != "" {
			cert, err := tls.LoadX509KeyPair(s.CertFile, s.KeyFile)
			if err != nil {
				return nil, fmt.Errorf("TLS client certificate: %w", err)
			}
			cfg.Certificates = []tls.Certificate{cert}
		}
		t.TLS = cfg
	}
	var mech sasl.Mechanism
	switch strings.ToLower(s.SASLMechanism) {
	case "":
	case "plain":
		mech = plain.Mechanism{Username: s.SASLUsername, Password: s.SASLPassword}
	case "scram-sha-256", "scram-sha-512":
		algo := scram.SHA256
		if strings.HasSuffix(strings.ToLower(s.SASLMechanism), "512") {
			algo = scram.SHA512
		}
		m, err := scram.Mechanism(algo, s.SASLUsername, s.SASLPassword)
		if err != nil {
			return nil, fmt.Errorf("SASL: %w", err)
		}
		mech = m
	default:
		return nil, fmt.Errorf("SASL mechanism %q is not plain, scram-sha-256 or scram-sha-512", s.SASLMechanism)
	}
	t.SASL = mech
	return t, nil
}
