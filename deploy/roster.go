package deploy

import (
	"bufio"
	"crypto/subtle"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
)

// Roster lists the participants a coordinator accepts: each name with an
// optional token and a revoked flag.
//
// Its file form has one participant per line, "name token", where token
// may be "-" for none, followed by optional fields: "revoked" refuses the
// name, "max_samples=N" refuses a registration declaring more than N
// training samples (the participant's data set size, which its weight in
// the average rests on). Blank lines and lines starting with # are
// ignored.
type Roster struct {
	entries map[string]rosterEntry
	order   []string
	source  string // the file it was read from, for errors
}

type rosterEntry struct {
	token      string
	revoked    bool
	maxSamples int // 0: no bound
}

var validName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// ParseRoster reads a roster; name is used in errors.
func ParseRoster(r io.Reader, name string) (*Roster, error) {
	ro := &Roster{entries: map[string]rosterEntry{}, source: name}
	sc := bufio.NewScanner(r)
	line := 0
	for sc.Scan() {
		line++
		f := strings.Fields(sc.Text())
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		if !validName.MatchString(f[0]) {
			return nil, fmt.Errorf("deploy: roster %s:%d: invalid participant name %q", name, line, f[0])
		}
		if _, dup := ro.entries[f[0]]; dup {
			return nil, fmt.Errorf("deploy: roster %s:%d: %q listed twice", name, line, f[0])
		}
		var e rosterEntry
		if len(f) >= 2 && f[1] != "-" {
			e.token = f[1]
		}
		for _, opt := range f[min(len(f), 2):] {
			v, isMax := strings.CutPrefix(opt, "max_samples=")
			switch {
			case opt == "revoked" && !e.revoked:
				e.revoked = true
			case isMax && e.maxSamples == 0:
				n, err := strconv.Atoi(v)
				if err != nil || n < 1 {
					return nil, fmt.Errorf("deploy: roster %s:%d: %s: want a positive number of samples", name, line, opt)
				}
				e.maxSamples = n
			default:
				return nil, fmt.Errorf("deploy: roster %s:%d: unexpected %q; want \"name token [revoked] [max_samples=N]\"", name, line, opt)
			}
		}
		ro.entries[f[0]] = e
		ro.order = append(ro.order, f[0])
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("deploy: roster %s: %w", name, err)
	}
	return ro, nil
}

// LoadRoster reads the roster file at path.
func LoadRoster(path string) (*Roster, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("deploy: %w", err)
	}
	defer f.Close()
	return ParseRoster(f, path)
}

// Revoke refuses the named participants from now on. A name that is not
// on the roster is an error, and then none is revoked: such a name (a typo,
// say) would revoke nobody, and the participant meant would still be
// admitted. Call it before the coordinator serves: a Roster is not safe
// for concurrent change.
func (r *Roster) Revoke(names ...string) error {
	var unknown []string
	for _, n := range names {
		if _, ok := r.entries[n]; !ok {
			unknown = append(unknown, strconv.Quote(n))
		}
	}
	if len(unknown) > 0 {
		src := "the roster"
		if r.source != "" {
			src = "roster " + r.source
		}
		return fmt.Errorf("deploy: cannot revoke %s: not a participant of %s", strings.Join(unknown, ", "), src)
	}
	for _, n := range names {
		e := r.entries[n]
		e.revoked = true
		r.entries[n] = e
	}
	return nil
}

// Names lists the roster's participants in file order.
func (r *Roster) Names() []string { return append([]string(nil), r.order...) }

// check says why name with token may not join (nil: it may).
func (r *Roster) check(name, token string) error {
	e, ok := r.entries[name]
	switch {
	case !ok:
		return fmt.Errorf("participant %q is not on the roster", name)
	case e.revoked:
		return fmt.Errorf("participant %q is revoked", name)
	case e.token != "" && subtle.ConstantTimeCompare([]byte(e.token), []byte(token)) != 1:
		return fmt.Errorf("participant %q: wrong token", name)
	}
	return nil
}

// MaxSamples returns the largest number of training samples name may
// declare (0: the roster sets no bound).
func (r *Roster) MaxSamples(name string) int { return r.entries[name].maxSamples }
