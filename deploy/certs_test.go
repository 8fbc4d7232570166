package deploy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestWriteDevCertsValidity: a validity that is not positive is refused
// before anything is written; a positive one gives certificates valid now.
func TestWriteDevCertsValidity(t *testing.T) {
	for _, tc := range []struct {
		validity time.Duration
		ok       bool
	}{
		{-24 * time.Hour, false},
		{0, false},
		{-time.Nanosecond, false},
		{time.Hour, true},
	} {
		dir := filepath.Join(t.TempDir(), "certs")
		err := WriteDevCerts(dir, []string{"127.0.0.1"}, []string{"site-a"}, tc.validity)
		if !tc.ok {
			if err == nil || !strings.Contains(err.Error(), "not positive") {
				t.Errorf("validity %v: %v, want a refusal", tc.validity, err)
			}
			if _, err := os.Stat(dir); !os.IsNotExist(err) {
				t.Errorf("validity %v: %s written (%v)", tc.validity, dir, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("validity %v: %v", tc.validity, err)
		}
		// The server accepts its own certificates.
		if _, err := ServerTLS(filepath.Join(dir, CAFile), filepath.Join(dir, ServerCert), filepath.Join(dir, ServerKey)); err != nil {
			t.Errorf("validity %v: %v", tc.validity, err)
		}
	}
}

// TestDevCertsNames: an invalid or repeated participant name is refused
// before anything is written (a repeated one's second certificate and
// token would replace the first, and serve refuses a roster naming it
// twice).
func TestDevCertsNames(t *testing.T) {
	for _, tc := range []struct {
		names []string
		want  string
	}{
		{[]string{"a", "a"}, `"a" listed twice`},
		{[]string{"a", "server"}, "invalid participant name"},
		{[]string{"a b"}, "invalid participant name"},
	} {
		dir := filepath.Join(t.TempDir(), "certs")
		err := WriteDevCerts(dir, []string{"127.0.0.1"}, tc.names, time.Hour)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.names, err, tc.want)
		}
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("%q: %s written (%v)", tc.names, dir, err)
		}
	}
}
