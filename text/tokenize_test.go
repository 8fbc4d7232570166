package text

import (
	"math"
	"slices"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

func TestTokenize(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string
	}{
		// Empty and blank input.
		{"empty", "", nil},
		{"blank", " \t\n\r\u00a0\u3000", nil},
		{"punctuation only", "!!! ... ?!", nil},

		// Case and punctuation.
		{"mixed case", "Heavy FLOODING in Houston!!!", []string{"heavy", "flooding", "in", "houston"}},
		{"punctuation", "it's... 5.5-magnitude, (really)?", []string{"it", "s", "5", "5", "magnitude", "really"}},
		{"white space kinds", "a\nb\tc  d", []string{"a", "b", "c", "d"}},
		{"unicode case", "ÉCOLE Straße ΣΟΦΊΑ", []string{"école", "straße", "σοφία"}},
		{"other script digits", "٣ dead", []string{"٣", "dead"}},
		{"combining marks stay in words", "\u092c\u093e\u0922\u093c \u0930\u093e\u0939\u0924",
			[]string{"\u092c\u093e\u0922\u093c", "\u0930\u093e\u0939\u0924"}},
		{"control characters separate", "a\x1fb\x00c", []string{"a", "b", "c"}},
		{"invalid UTF-8 separates", "flo\xffod \xc3", []string{"flo", "od"}},

		// NFKC.
		{"full-width", "ＦＬＯＯＤ ＃ｈｅｌｐ", []string{"flood", "help"}},
		{"mathematical bold", "𝐁𝐑𝐄𝐀𝐊𝐈𝐍𝐆 news", []string{"breaking", "news"}},
		{"ligature", "ﬂood", []string{"flood"}},
		{"decomposed accent composed", "cafe\u0301", []string{"caf\u00e9"}},
		{"ellipsis", "Water rising…", []string{"water", "rising"}},

		// Links.
		{"links", "Photos: https://t.co/AbC123 and http://x.com/a?b=c",
			[]string{"photos", "<url>", "and", "<url>"}},
		{"www link", "see www.fema.gov/help now", []string{"see", "<url>", "now"}},
		{"link after punctuation", "flooding!https://t.co/x", []string{"flooding", "<url>"}},
		{"upper-case link", "HTTPS://T.CO/X", []string{"<url>"}},
		{"picture link", "pic.twitter.com/xYz12", []string{"<url>"}},
		{"link glued to a word is not a link", "seehttp://x", []string{"seehttp", "x"}},
		{"truncated link", "more http…", []string{"more", "http"}},

		// Mentions.
		{"mentions", "@RedCross please help @user_1!", []string{"<user>", "please", "help", "<user>"}},
		{"mention in brackets", "(@user)", []string{"<user>"}},
		{"mention then suffix", "@user's", []string{"<user>", "s"}},
		{"e-mail is not a mention", "mail me@example.org", []string{"mail", "me", "example", "org"}},
		{"at after underscore", "a_@b", []string{"a", "b"}},
		{"lone at", "@ @@user", []string{"<user>"}},
		{"non-ASCII after at", "@ñandu", []string{"ñandu"}},

		// Retweet markers.
		{"retweet", "RT @KHOU: Water rising on I-45", []string{"<user>", "water", "rising", "on", "i", "45"}},
		{"retweet lower case", "rt @a: ok", []string{"<user>", "ok"}},
		{"retweet mid-text", "wow RT @a: ok", []string{"wow", "<user>", "ok"}},
		{"first-word RT", "RT: breaking news", []string{"breaking", "news"}},
		{"road number kept", "Rt 9 closed", []string{"rt", "9", "closed"}},
		{"rt as a word kept", "please RT this", []string{"please", "rt", "this"}},
		{"rt at the end kept", "please rt", []string{"please", "rt"}},
		{"only RT", "RT", nil},
		{"RT inside a word", "ART @x", []string{"art", "<user>"}},

		// Hashtags.
		{"hashtags", "#Flood #HurricaneHarvey", []string{"flood", "hurricaneharvey"}},
		{"hashtag underscores", "#flood_relief2017", []string{"flood", "relief2017"}},
		{"hashtags glued", "#flood#help", []string{"flood", "help"}},
		{"not hashtags", "# ## #! C#", []string{"c"}},
		{"hashtag then mention", "#a@b", []string{"a", "b"}},

		// Emoji and symbols.
		{"emoji dropped", "Praying 🙏🙏 for Mexico ❤️", []string{"praying", "for", "mexico"}},
		{"emoji inside a word", "help🙏me", []string{"help", "me"}},
		{"joined emoji", "👨\u200d👩\u200d👧", nil},
		{"keycap", "1\ufe0f\u20e3 update", []string{"1", "update"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Tokenize(tt.in); !slices.Equal(got, tt.want) {
				t.Errorf("Tokenize(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestTokenizerOptions(t *testing.T) {
	tests := []struct {
		name string
		tok  Tokenizer
		in   string
		want []string
	}{
		{"hashtag token", Tokenizer{Hashtags: true}, "Big #Flood_Relief now",
			[]string{"big", "#flood_relief", "flood", "relief", "now"}},
		{"hashtag non-ASCII", Tokenizer{Hashtags: true}, "#ΣΕΙΣΜΟΣ", []string{"#σεισμοσ", "σεισμοσ"}},
		{"hashtags glued", Tokenizer{Hashtags: true}, "#a#b", []string{"#a", "a", "#b", "b"}},
		{"hashtag option leaves words", Tokenizer{Hashtags: true}, "no tags", []string{"no", "tags"}},
		{"symbols", Tokenizer{Symbols: true}, "help🙏🙏 ❤️ 👍🏽",
			[]string{"help", "🙏", "🙏", "❤", "👍"}},
		{"symbols not punctuation", Tokenizer{Symbols: true}, "©2017, 5°C!", []string{"©", "2017", "5", "°", "c"}},
		{"flag is two symbols", Tokenizer{Symbols: true}, "🇺🇸", []string{"🇺", "🇸"}},
		{"replacement characters dropped", Tokenizer{Symbols: true}, "\xff\ufffd", nil},
		{"symbols in links dropped", Tokenizer{Symbols: true}, "http://x/©", []string{"<url>"}},
		{"both", Tokenizer{Hashtags: true, Symbols: true}, "#a🙏", []string{"#a", "a", "🙏"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.tok.Tokenize(tt.in); !slices.Equal(got, tt.want) {
				t.Errorf("%+v.Tokenize(%q) = %q, want %q", tt.tok, tt.in, got, tt.want)
			}
		})
	}
}

// checkTokens reports a token that breaks the guarantees of Tokenize.
func checkTokens(t *testing.T, in string, toks []string) {
	t.Helper()
	for i, tok := range toks {
		switch {
		case tok == "":
			t.Errorf("Tokenize(%q): token %d is empty: %q", in, i, toks)
		case !utf8.ValidString(tok):
			t.Errorf("Tokenize(%q): token %d %q is not valid UTF-8", in, i, tok)
		case strings.ContainsFunc(tok, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }):
			t.Errorf("Tokenize(%q): token %d %q holds white space or a control character", in, i, tok)
		}
	}
}

func FuzzTokenize(f *testing.F) {
	for _, seed := range []string{
		"",
		"RT @KHOU: Heavy #flooding on I-45 https://t.co/AbC123 🙏",
		"rt @a_b: #Σ_1 me@x.org www.x.y pic.twitter.com/z ＦＬＯＯＤ 𝐁 ﬂ …",
		"\xff\xfe\x1f\x00 #\u0301 a\u0301\ufe0f 👨\u200d👩 🇺🇸",
	} {
		f.Add(seed)
	}
	bag := DefaultHashedBag()
	vec := make([]float32, bag.Dim)
	f.Fuzz(func(t *testing.T, s string) {
		for _, tok := range []Tokenizer{{}, {Hashtags: true, Symbols: true}} {
			toks := tok.Tokenize(s)
			checkTokens(t, s, toks)
			if again := tok.Tokenize(s); !slices.Equal(toks, again) {
				t.Errorf("Tokenize(%q) not deterministic: %q, then %q", s, toks, again)
			}
			if err := bag.Featurize(toks, vec); err != nil {
				t.Fatalf("Featurize(%q): %v", toks, err)
			}
			// The norm is 0 without tokens, and otherwise 1, unless
			// colliding n-grams cancel exactly.
			norm := l2(vec)
			if len(toks) == 0 && norm != 0 || norm != 0 && math.Abs(norm-1) > 1e-5 {
				t.Errorf("Featurize(%q): norm %v, want 1 (or 0 without tokens)", toks, norm)
			}
		}
	})
}

func BenchmarkTokenize(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		Tokenize(benchTweet)
	}
}
