package deploy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"

	"google.golang.org/grpc/credentials"
)

// Reasons of a failed TLS handshake (the label of
// fedcmi_tls_handshake_failures_total).
const (
	tlsNotTLS        = "not_tls"         // the client spoke something else, e.g. plain-text gRPC
	tlsNoCertificate = "no_certificate"  // the client presented no certificate
	tlsBadCert       = "bad_certificate" // the client's certificate did not verify against the CA
	tlsPeerRefused   = "peer_refused"    // the client refused the coordinator's certificate
	tlsAborted       = "aborted"         // the connection closed or timed out mid-handshake
	tlsOther         = "other"
)

// errTLSProbe refuses the TLS probe of a plain-text participant
// (speaksTLS), recognised by its application protocol.
var errTLSProbe = errors.New("deploy: TLS probe of a participant speaking plain text")

// ServerCredentials returns the gRPC transport credentials of a
// coordinator serving TLS configuration tc (ServerTLS): those of
// credentials.NewTLS, with every failed handshake (a certificate refused,
// a client speaking plain text) logged with the remote address and
// counted in the metrics by reason. gRPC itself drops such connections
// silently. The TLS probe a plain-text participant sends after its
// refused attempt is refused at its client hello and not counted, so
// that the attempt counts once, as not_tls.
func (c *Coordinator) ServerCredentials(tc *tls.Config) credentials.TransportCredentials {
	tc = tc.Clone()
	next := tc.GetConfigForClient
	tc.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		if slices.Contains(hello.SupportedProtos, tlsProbeProtocol) {
			return nil, errTLSProbe
		}
		if next != nil {
			return next(hello)
		}
		return nil, nil
	}
	return &loggedCreds{TransportCredentials: credentials.NewTLS(tc), met: c.met, log: c.log}
}

type loggedCreds struct {
	credentials.TransportCredentials
	met *Metrics
	log *slog.Logger
}

func (l *loggedCreds) ServerHandshake(conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	out, info, err := l.TransportCredentials.ServerHandshake(conn)
	if errors.Is(err, errTLSProbe) {
		l.log.Info("TLS probe refused: a participant speaking plain text checks that the coordinator speaks TLS (counted as not_tls)",
			"remote", conn.RemoteAddr().String())
		return out, info, err
	}
	if err != nil {
		reason := handshakeReason(err)
		l.met.TLSRefusals.WithLabelValues(reason).Inc()
		level, msg := slog.LevelWarn, "TLS handshake refused"
		switch reason {
		case tlsAborted:
			level, msg = slog.LevelInfo, "TLS handshake aborted by the client"
		case tlsNotTLS:
			msg = "TLS handshake refused: the client does not speak TLS (a participant joined with -insecure?)"
		}
		l.log.Log(context.Background(), level, msg, "remote", conn.RemoteAddr().String(), "reason", reason, "err", err)
	}
	return out, info, err
}

func (l *loggedCreds) Clone() credentials.TransportCredentials {
	return &loggedCreds{TransportCredentials: l.TransportCredentials.Clone(), met: l.met, log: l.log}
}

// handshakeReason classifies a server handshake error.
func handshakeReason(err error) string {
	var rec tls.RecordHeaderError
	var verify *tls.CertificateVerificationError
	var unknownCA x509.UnknownAuthorityError
	var invalid x509.CertificateInvalidError
	msg := err.Error()
	switch {
	case errors.As(err, &rec):
		return tlsNotTLS
	case strings.Contains(msg, "didn't provide a certificate"):
		return tlsNoCertificate
	case errors.As(err, &verify), errors.As(err, &unknownCA), errors.As(err, &invalid), strings.Contains(msg, "x509: "):
		return tlsBadCert
	case strings.Contains(msg, "remote error"):
		return tlsPeerRefused
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed), isTimeout(err),
		strings.Contains(msg, "connection reset"), strings.Contains(msg, "broken pipe"):
		return tlsAborted
	}
	return tlsOther
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
