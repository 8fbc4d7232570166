package text

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// Placeholder tokens for the parts of a tweet whose exact text carries
// little meaning but whose presence does. They contain '<' and '>', which
// no word token contains, so they cannot collide with a word.
const (
	URLToken  = "<url>"  // stands for a link: http://..., https://..., www...., pic.twitter.com/...
	UserToken = "<user>" // stands for an @mention
)

// Tokenizer splits tweets into tokens. Its zero value is the default, the
// one used by Tokenize; its fields switch on extra kinds of tokens.
//
// A Tokenizer is a small value without internal state: it may be copied
// and used from several goroutines at once.
type Tokenizer struct {
	// Hashtags, when true, emits each hashtag also as one token of its own,
	// "#" followed by its lowercased body, just before the body's words:
	// "#Flood_Relief" gives "#flood_relief", "flood", "relief" instead of
	// "flood", "relief". A featuriser then tells a tagged word from the
	// same word in running text; n-grams see the extra token in sequence.
	Hashtags bool

	// Symbols, when true, keeps every rune of Unicode category So (other
	// symbol: most emoji, but also ©, ° and the like) as a token of its
	// own: "help🙏🙏" gives "help", "🙏", "🙏". Emoji modifiers, variation
	// selectors and joiners are still dropped, so a composed emoji yields
	// its base symbols.
	Symbols bool
}

// Tokenize splits s with the default Tokenizer (Tokenizer{}); see
// Tokenizer.Tokenize for the rules.
func Tokenize(s string) []string {
	return Tokenizer{}.Tokenize(s)
}

// Tokenize splits a tweet into lowercase tokens. The rules, in order:
//
//  1. s is normalised to Unicode NFKC, which maps compatibility forms to
//     plain ones: full-width "ＦＬＯＯＤ" and mathematical bold "𝐅𝐋𝐎𝐎𝐃"
//     become "FLOOD", the ligature of "ﬂood" becomes "fl", "…" becomes
//     "...", and a letter followed by a combining accent becomes the
//     precomposed letter.
//  2. s is cut into words at white space. A word "RT" or "rt" (any case,
//     optionally followed by ':') is a retweet marker and is dropped when
//     the next word starts with an @mention; a first word written exactly
//     "RT" or "RT:" is dropped in any case. Other words "rt" are kept, so
//     "Rt 9 closed" keeps its road number.
//  3. Inside a word, a link (http://, https://, www. or pic.twitter.com/,
//     any case, not directly after a letter or digit) becomes URLToken
//     and takes the rest of the word.
//  4. An @mention ('@' not directly after a letter, digit or underscore,
//     then ASCII letters, digits and underscores, as in Twitter user
//     names) becomes UserToken. "me@example.org" is not a mention.
//  5. A hashtag ('#' followed by a letter or digit, then letters, digits,
//     combining marks and underscores) contributes the words of its body,
//     split at underscores: "#Flood" gives "flood". See the Hashtags
//     field for keeping the hashtag itself.
//  6. Everything else is split into maximal runs of letters and digits
//     (any script; combining marks continue a run, so words in scripts
//     such as Devanagari stay whole), each lowercased with
//     strings.ToLower. All other runes (punctuation, symbols, emoji,
//     control characters, invalid UTF-8) separate tokens and are dropped,
//     unless the Symbols field keeps them.
//
// Tokens are never empty and never contain white space, control characters
// or invalid UTF-8. A string without letters, digits (or, with Symbols,
// symbols) gives no tokens: a nil slice. Tokenize never panics.
func (t Tokenizer) Tokenize(s string) []string {
	s = norm.NFKC.String(s)
	var toks []string
	first := true
	for word, rest := nextWord(s); word != ""; word, rest = nextWord(rest) {
		next, _ := nextWord(rest)
		if isRetweetMarker(word, next, first) {
			first = false
			continue
		}
		first = false
		toks = t.appendWord(toks, word)
	}
	return toks
}

// nextWord returns the first maximal run of non-space runes in s and the
// text after it; word is "" when s holds only white space.
func nextWord(s string) (word, rest string) {
	start := strings.IndexFunc(s, func(r rune) bool { return !unicode.IsSpace(r) })
	if start < 0 {
		return "", ""
	}
	s = s[start:]
	end := strings.IndexFunc(s, unicode.IsSpace)
	if end < 0 {
		return s, ""
	}
	return s[:end], s[end:]
}

// isRetweetMarker reports whether word is a retweet marker given the word
// after it (or "") and whether it is the first word; see Tokenize, rule 2.
func isRetweetMarker(word, next string, first bool) bool {
	base := strings.TrimSuffix(word, ":")
	if !strings.EqualFold(base, "rt") {
		return false
	}
	if len(next) > 1 && next[0] == '@' && userNameLen(next[1:]) > 0 {
		return true
	}
	return first && base == "RT"
}

// appendWord appends the tokens of one white-space-free word to toks.
func (t Tokenizer) appendWord(toks []string, w string) []string {
	// afterName is true when the previous rune could be part of a name or
	// e-mail address, so that an '@' there does not start a mention.
	afterName := false
	for p := 0; p < len(w); {
		r, size := utf8.DecodeRuneInString(w[p:])
		switch {
		case hasURLPrefix(w[p:]):
			return append(toks, URLToken)
		case r == '@' && !afterName:
			if n := userNameLen(w[p+1:]); n > 0 {
				toks = append(toks, UserToken)
				p += 1 + n
				afterName = true
				continue
			}
		case r == '#':
			if n := hashtagLen(w[p+1:]); n > 0 {
				body := w[p+1 : p+1+n]
				if t.Hashtags {
					toks = append(toks, "#"+strings.ToLower(body))
				}
				toks = appendRuns(toks, body)
				p += 1 + n
				afterName = true
				continue
			}
		case isWordStart(r):
			n := runLen(w[p:])
			toks = append(toks, strings.ToLower(w[p:p+n]))
			p += n
			afterName = true
			continue
		case t.Symbols && r != utf8.RuneError && unicode.Is(unicode.So, r):
			// RuneError (U+FFFD, also what invalid UTF-8 decodes to) is
			// category So too, but never a useful token.
			toks = append(toks, w[p:p+size])
		}
		afterName = r == '_'
		p += size
	}
	return toks
}

// appendRuns appends the lowercased letter-and-digit runs of s to toks,
// dropping everything between them.
func appendRuns(toks []string, s string) []string {
	for p := 0; p < len(s); {
		r, size := utf8.DecodeRuneInString(s[p:])
		if isWordStart(r) {
			n := runLen(s[p:])
			toks = append(toks, strings.ToLower(s[p:p+n]))
			p += n
			continue
		}
		p += size
	}
	return toks
}

// hasURLPrefix reports whether s starts a link: http://, https://, www. or
// pic.twitter.com/, in any case. A link runs to the next white space.
func hasURLPrefix(s string) bool {
	for _, p := range [...]string{"http://", "https://", "www.", "pic.twitter.com/"} {
		if len(s) >= len(p) && strings.EqualFold(s[:len(p)], p) {
			return true
		}
	}
	return false
}

// userNameLen returns the length in bytes of the Twitter user name at the
// start of s: ASCII letters, digits and underscores.
func userNameLen(s string) int {
	n := 0
	for n < len(s) {
		c := s[n]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_') {
			break
		}
		n++
	}
	return n
}

// hashtagLen returns the length in bytes of the hashtag body at the start
// of s (the text after '#'): a letter or digit, then letters, digits,
// combining marks and underscores. It is 0 when s does not start a body.
func hashtagLen(s string) int {
	r, size := utf8.DecodeRuneInString(s)
	if !isWordStart(r) {
		return 0
	}
	n := size
	for n < len(s) {
		r, size := utf8.DecodeRuneInString(s[n:])
		if !isWordStart(r) && !isMark(r) && r != '_' {
			break
		}
		n += size
	}
	return n
}

// runLen returns the length in bytes of the run of letters, digits and
// combining marks at the start of s, which starts with a letter or digit.
func runLen(s string) int {
	n := 0
	for n < len(s) {
		r, size := utf8.DecodeRuneInString(s[n:])
		if !isWordStart(r) && !(n > 0 && isMark(r)) {
			break
		}
		n += size
	}
	return n
}

// isWordStart reports whether r can start a word token: a letter or a
// decimal digit of any script. utf8.RuneError (invalid UTF-8) is neither.
func isWordStart(r rune) bool {
	return unicode.IsLetter(r) || unicode.IsDigit(r)
}

// isMark reports whether r is a combining mark that continues a word
// (categories Mn and Mc). Variation selectors, which turn a preceding
// character into its emoji form, are excluded.
func isMark(r rune) bool {
	return unicode.In(r, unicode.Mn, unicode.Mc) && !unicode.Is(unicode.Variation_Selector, r)
}
