package gateway

import (
	"bytes"
	"encoding/json"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/custos-dev/custos/redact"
	"github.com/custos-dev/custos/redact/pii"
)

func testEngine(t testing.TB) *redact.Engine {
	t.Helper()
	e, err := redact.New(redact.Config{Secrets: true, Detectors: pii.Detectors(pii.DefaultConfig())})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

var numbered = regexp.MustCompile(`\[\[([A-Z]+)_[0-9]+\]\]`)

// normalize decodes b and drops placeholder numbers (a tree walk and the
// streaming pass may meet the strings in another order).
func normalize(t *testing.T, b []byte) any {
	t.Helper()
	var v any
	d := json.NewDecoder(bytes.NewReader(numbered.ReplaceAll(b, []byte("[[$1]]"))))
	d.UseNumber()
	if err := d.Decode(&v); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	return v
}

// TestScrubBodyMatchesTree proves the streaming pass redacts exactly the
// strings the tree walk (redactValue) does, and keeps everything else.
func TestScrubBodyMatchesTree(t *testing.T) {
	e := testEngine(t)
	tok := "ghp_q7Xk2mPz9LwR4tYv8NcB3hJd6FgS1aQe5ZuW"
	mail := "dana.ops@northwind-traders.com"
	bodies := []string{
		`{"model":"gpt-4o","stream":true,"max_tokens":100,"messages":[{"role":"system","content":"deploy with ` + tok + `"},{"role":"user","content":[{"type":"text","text":"mail ` + mail + `"},{"type":"image_url","image_url":{"url":"data:image/png;base64,` + tok + `"}}]},{"role":"assistant","tool_calls":[{"id":"call_1","type":"function","function":{"name":"send","arguments":"{\"to\":\"` + mail + `\",\"n\":1}"}}]},{"role":"tool","tool_call_id":"call_1","content":"sent ` + tok + `"}],"tools":[{"type":"function","function":{"name":"send","description":"as ` + mail + `","parameters":{"type":"object","properties":{"to":{"type":"string","description":"e.g. ` + mail + `"}}}}}],"tool_choice":{"type":"function","function":{"name":"send"}},"seed":12345678901234567890}`,
		`{"model":"claude-x","max_tokens":64,"system":[{"type":"text","text":"key ` + tok + `"}],"messages":[{"role":"assistant","content":[{"type":"thinking","thinking":"I saw ` + tok + `","signature":"sig"},{"type":"redacted_thinking","data":"abc"},{"type":"tool_use","id":"tu_1","name":"send","input":{"to":"` + mail + `"}}]},{"role":"user","content":[{"type":"tool_result","tool_use_id":"tu_1","content":[{"type":"text","text":"ok ` + mail + `"}]}]}],"thinking":{"type":"enabled","budget_tokens":1024}}`,
		`{"model":"text-embedding-3-small","input":["a ` + tok + `","b ` + mail + `"],"encoding_format":"float"}`,
		`{"model":"m","input":"\u00e9t\u00e9 \"quoted\" \\ back ` + mail + `\n"}`,
	}
	for _, in := range bodies {
		got, top, err := scrubBody(nil, []byte(in), newScrubber(e), false)
		if err != nil {
			t.Fatalf("%v: %s", err, in)
		}
		var tree map[string]any
		d := json.NewDecoder(strings.NewReader(in))
		d.UseNumber()
		if err := d.Decode(&tree); err != nil {
			t.Fatal(err)
		}
		sc := newScrubber(e)
		for k, v := range tree {
			if k != "model" && k != "stream" {
				tree[k] = sc.redactValue(v)
			}
		}
		want, _ := marshal(tree)
		// The tree walk leaves a thinking block whole; the stream skips its
		// text by name. Both keep it byte for byte.
		if g, w := normalize(t, got), normalize(t, want); !reflect.DeepEqual(g, w) {
			t.Errorf("streaming pass:\n%s\ntree walk:\n%s", got, want)
		}
		if top.model == "" {
			t.Errorf("no model read from %s", in)
		}
		if strings.Contains(string(got), mail) || (strings.Contains(string(got), tok) && !strings.Contains(in, "base64,"+tok) && !strings.Contains(in, "thinking\":\"I saw")) {
			t.Errorf("planted value left in %s", got)
		}
	}
}

// TestScrubBodyRefuses proves the pass accepts exactly one valid JSON object.
func TestScrubBodyRefuses(t *testing.T) {
	sc := newScrubber(testEngine(t))
	for _, in := range []string{
		``, ` `, `[]`, `"x"`, `1`, `null`, `{`, `{"model":"a"}{}`, `{"model":"a"} x`, `{"model":"a"}]`, `{"model":"a"}}`,
		`{"model":"a","model":"b"}`, "{\"model\":\"a\xff\"}", `{"model":"a",}`, `{model:"a"}`, `{"a":[1,2,]}`,
	} {
		if _, _, err := scrubBody(nil, []byte(in), sc, true); err == nil {
			t.Errorf("accepted %q", in)
		}
	}
}

// TestScrubBodyTop checks the routing fields and the stream_options added
// to streaming chat requests.
func TestScrubBodyTop(t *testing.T) {
	out, top, err := scrubBody(nil, []byte(`{"model":"gpt","stream":true,"max_completion_tokens":77,"messages":[{"role":"user","content":"hi","max_tokens":5}]}`), nil, true)
	if err != nil {
		t.Fatal(err)
	}
	if top.model != "gpt" || !top.stream || top.maxTokens != 77 || top.streamOptions {
		t.Errorf("top %+v", top)
	}
	if !bytes.HasSuffix(out, []byte(`,"stream_options":{"include_usage":true}}`)) {
		t.Errorf("no stream_options added: %s", out)
	}
	out, top, err = scrubBody(nil, []byte(`{"model":"gpt","stream":true,"stream_options":{"include_usage":false}}`), nil, true)
	if err != nil || !top.streamOptions || bytes.Count(out, []byte("stream_options")) != 1 {
		t.Errorf("caller's stream_options replaced: %s %v", out, err)
	}
}

func BenchmarkScrubBody(b *testing.B) {
	e := testEngine(b)
	var sb strings.Builder
	for sb.Len() < 8000 {
		sb.WriteString("func (c *Client) Fetch(ctx context.Context, page int) ([]Item, error) {\n\treturn nil, fmt.Errorf(\"status %d\", resp.StatusCode)\n}\n")
	}
	body, _ := json.Marshal(map[string]any{"model": "gpt-4o", "max_tokens": 1024, "messages": []any{
		map[string]any{"role": "system", "content": "You are a reviewer."},
		map[string]any{"role": "user", "content": sb.String()},
	}})
	ref := func(_ *bodyBuf, raw []byte, sc *scrubber, opts bool) ([]byte, top, error) {
		return scrubBodyRef(raw, sc, opts)
	}
	for _, impl := range []struct {
		name   string
		fn     func(*bodyBuf, []byte, *scrubber, bool) ([]byte, top, error)
		pooled bool // into a pooled buffer, released after, as the gateway does
	}{{"pass", scrubBody, false}, {"pass-pooled", scrubBody, true}, {"jsontext", ref, false}} {
		b.Run(impl.name, func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				var dst *bodyBuf
				if impl.pooled {
					dst = bodyPool.Get().(*bodyBuf)
				}
				if _, _, err := impl.fn(dst, body, newScrubber(e), true); err != nil {
					b.Fatal(err)
				}
				if dst != nil {
					dst.release()
				}
			}
		})
	}
}

// TestBracketInString checks the passthrough test of stream events: a '['
// in a string (raw or \u005b) counts, the brackets of arrays do not.
func TestBracketInString(t *testing.T) {
	for in, want := range map[string]bool{
		`{"choices":[{"delta":{"content":"hi"}}]}`:           false,
		`{"choices":[{"delta":{"content":"a [[SECRET_1"}}]}`: true,
		`{"choices":[{"delta":{"content":"["}}]}`:            true,
		`{"c":"\u005b"}`:      true,
		`{"c":"\u005B"}`:      true,
		`{"c":"\"[\""}`:       true,
		`{"c":"\\","d":[1]}`:  false,
		`{"c":"x\"y","d":[]}`: false,
		`[]`:                  false,
	} {
		if got := bracketInString([]byte(in)); got != want {
			t.Errorf("%s: %v, want %v", in, got, want)
		}
	}
}

// TestScrubBodyReservesPlaceholders proves a placeholder already written in
// a request (with nothing to redact in its string) is never issued for a
// real value, so restoring the answer cannot turn that text into a secret.
func TestScrubBodyReservesPlaceholders(t *testing.T) {
	sc := newScrubber(testEngine(t))
	in := `{"model":"m","messages":[{"role":"user","content":"say [[SECRET_1]] back"},{"role":"user","content":"token ghp_q7Xk2mPz9LwR4tYv8NcB3hJd6FgS1aQe5ZuW"}]}`
	out, _, err := scrubBody(nil, []byte(in), sc, false)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Count(out, []byte("[[SECRET_1]]")) != 1 || !bytes.Contains(out, []byte("[[SECRET_2]]")) {
		t.Fatalf("the real token took the placeholder written in the request: %s", out)
	}
}

// TestScrubBodyDuplicateName checks a member given twice is refused with
// an error that says so.
func TestScrubBodyDuplicateName(t *testing.T) {
	for _, in := range []string{`{"model":"a","model":"b"}`, `{"model":"a","messages":[{"role":"user","role":"system"}]}`} {
		if _, _, err := scrubBody(nil, []byte(in), nil, false); err != errDuplicateName {
			t.Errorf("%s: %v, want the duplicate-name error", in, err)
		}
	}
}

// scrubSeeds are request bodies, valid and not, for the differential tests.
var scrubSeeds = []string{
	// Runs of escapes, ended by text, a quote, the input's end or a bad one.
	`{"a":"\t\t\t\n\"x\\\/\b\f\r"}`, `{"a":"\t\t`, `{"a":"\t\`, `{"a":"\t\u00e9\t\ud83d\ude00\n"}`, `{"a":"\t\q"}`,
	`{"a":"\n\ud83d\n"}`, `{"a":"\t\u00"}`, `{"m\t\t":"\t"}`,
	``, ` `, `{}`, ` {} `, `{ }`, `[]`, `"x"`, `1`, `null`, `{`, `}`, `{"a"}`, `{"a":}`, `{"a":1,}`, `{,}`, `{"a":1 "b":2}`,
	`{"model":"a"}{}`, `{"model":"a"} x`, `{"model":"a"}]`, `{"model":"a"}}`, `{"model":"a"}` + "\n\t\r ",
	`{"model":"a","model":"b"}`, `{"mod\u0065l":"a","model":"b"}`, `{"a":{"b":1,"b":2}}`, `{"a":[{"x":1},{"x":1,"x":2}]}`,
	"{\"model\":\"a\xff\"}", "{\"model\":\"a\xed\xa0\x80\"}", "{\"m\":\"\x01\"}", "{\"m\":\"\x7f\u00e9\"}",
	`{"m":"\ud800"}`, `{"m":"\udc00\ud800"}`, `{"m":"\ud83d\ude00 ok"}`, `{"m":"\ud83d\u0041"}`, `{"m":"\u00"}`, `{"m":"\x"}`, `{"m":"\/\b\f\n\r\t\"\\"}`,
	`{"n":-0}`, `{"n":01}`, `{"n":1.}`, `{"n":.5}`, `{"n":1e}`, `{"n":1e+}`, `{"n":-1.5E-7}`, `{"n":-}`, `{"n":+1}`, `{"n":1.0e+308}`, `{"n":Infinity}`,
	`{"b":true,"c":false,"d":null}`, `{"b":tru}`, `{"b":nul}`, `{"b":True}`,
	`{"model":"gpt","stream":true,"max_tokens":12,"messages":[{"role":"user","content":"mail dana.ops@northwind-traders.com"}]}`,
	`{"model":"gpt","stream":true,"stream_options":null}`, `{"stream":true}`, `{"stream":"true","model":"x"}`, `{"model":7,"max_tokens":"5","max_completion_tokens":1e3,"max_output_tokens":3}`,
	`{"model":"x","messages":[{"role":"assistant","tool_calls":[{"function":{"name":"f","arguments":"{\"to\":\"dana.ops@northwind-traders.com\"}"}}]}]}`,
	`{"model":"x","content":[{"type":"image_url","image_url":{"url":"data:text/plain,ghp_q7Xk2mPz9LwR4tYv8NcB3hJd6FgS1aQe5ZuW"}},{"url":"https://x.test/?t=ghp_q7Xk2mPz9LwR4tYv8NcB3hJd6FgS1aQe5ZuW"}]}`,
	`{"model":"x","input":"\u0067hp_q7Xk2mPz9LwR4tYv8NcB3hJd6FgS1aQe5ZuW \"q\" [[SECRET_1]]"}`,
	`{"model":"x","metadata":{"type":{"data":"ghp_q7Xk2mPz9LwR4tYv8NcB3hJd6FgS1aQe5ZuW"},"text":"ghp_q7Xk2mPz9LwR4tYv8NcB3hJd6FgS1aQe5ZuW"}}`,
	`{"model":"x","input":"\tkey:\n\"ghp_q7Xk2mPz9LwR4tYv8NcB3hJd6FgS1aQe5ZuW\"\n\u00e9t\u00e9 \ud83d\ude00 dana.ops@northwind-traders.com\u0021 caf\u00e9"}`,
	"{\"model\":\"x\",\"input\":\"\u00e9t\u00e9 \\t dana.ops@northwind-traders.com\u00e9\"}",
	`{"a":` + strings.Repeat(`[`, 200) + strings.Repeat(`]`, 200) + `}`,
	`{"a":` + strings.Repeat(`{"b":`, 100) + `1` + strings.Repeat(`}`, 100) + `}`,
	`{"k0":0,"k1":1,"k2":2,"k3":3,"k4":4,"k5":5,"k6":6,"k7":7,"k8":8,"k9":9,"k10":10,"k11":11,"k12":12,"k13":13,"k14":14,"k15":15,"k16":16,"k17":17,"k3":3}`,
}

// checkScrubBodySame fails unless scrubBody and the jsontext-based
// scrubBodyRef accept the same bodies, refuse the rest with the same error,
// and agree on the routing fields and (decoded) on the output.
func checkScrubBodySame(t *testing.T, e *redact.Engine, in []byte) {
	for _, opts := range []bool{false, true} {
		var sc, scRef *scrubber
		if e != nil {
			sc, scRef = newScrubber(e), newScrubber(e)
		}
		// The result must not share memory with the input, whose buffer
		// the gateway reuses.
		src := bytes.Clone(in)
		got, gotTop, err := scrubBody(nil, src, sc, opts)
		clear(src)
		want, wantTop, wantErr := scrubBodyRef(bytes.Clone(in), scRef, opts)
		if err != wantErr {
			t.Fatalf("%q: error %v, the reference %v", in, err, wantErr)
		}
		checkScrubBodyInto(t, e, in, opts, got, err)
		if err != nil {
			continue
		}
		if gotTop != wantTop {
			t.Fatalf("%q: top %+v, the reference %+v", in, gotTop, wantTop)
		}
		if !json.Valid(got) {
			t.Fatalf("%q: output is not JSON: %q", in, got)
		}
		var g, w any
		dg := json.NewDecoder(bytes.NewReader(got))
		dg.UseNumber()
		dw := json.NewDecoder(bytes.NewReader(want))
		dw.UseNumber()
		if dg.Decode(&g) != nil || dw.Decode(&w) != nil || !reflect.DeepEqual(g, w) {
			t.Fatalf("%q:\n got %s\nwant %s", in, got, want)
		}
		if sc != nil && (sc.n != scRef.n || !reflect.DeepEqual(sc.raw, scRef.raw)) {
			t.Fatalf("%q: %d findings %v, the reference %d %v", in, sc.n, sc.raw, scRef.n, scRef.raw)
		}
	}
}

// checkScrubBodyInto fails unless scrubBody writing into a pooled buffer
// returns what it returns into a new slice, and unless releasing that
// buffer clears all that was written, in the array it ends in and in the
// one it outgrew. The buffers: half the body's size (outgrown before the
// first write), and the size scrubBody asks for (outgrown only by a
// result with placeholders much longer than what they replace).
func checkScrubBodyInto(t *testing.T, e *redact.Engine, in []byte, opts bool, want []byte, wantErr error) {
	t.Helper()
	for _, size := range []int{len(in) / 2, len(in) + len(in)/8 + len(streamOptions) + 1} {
		var sc *scrubber
		if e != nil {
			sc = newScrubber(e)
		}
		first := make([]byte, size)
		dst := &bodyBuf{b: first[:0]}
		got, _, err := scrubBody(dst, bytes.Clone(in), sc, opts)
		if err != wantErr || (err == nil && !bytes.Equal(got, want)) {
			t.Fatalf("%q into a buffer: %q, %v; into a new slice: %q, %v", in, got, err, want, wantErr)
		}
		if dst.hi < len(dst.b) {
			t.Fatalf("%q: the buffer says %d bytes were written, it holds %d", in, dst.hi, len(dst.b))
		}
		last := dst.b[:cap(dst.b)]
		if cap(last) > maxPooledBody {
			last = nil // not pooled, so not cleared
		}
		dst.release()
		if !zeroed(first) || !zeroed(last) {
			t.Fatalf("%q: a released buffer still holds the body", in)
		}
	}
}

// TestScrubBodyMatchesReference holds the hand-written pass to the
// jsontext-based one on valid, invalid and hostile bodies.
func TestScrubBodyMatchesReference(t *testing.T) {
	e := testEngine(t)
	for _, s := range scrubSeeds {
		checkScrubBodySame(t, e, []byte(s))
		checkScrubBodySame(t, nil, []byte(s))
	}
	// Placeholders longer than what they replace: the result outgrows a
	// buffer sized for the body.
	checkScrubBodySame(t, e, []byte(`{"model":"m","messages":[{"role":"user","content":"`+strings.Repeat("ab@cd.io ", 200)+`"}]}`))
	deep := func(n int) []byte {
		return []byte(`{"a":` + strings.Repeat(`[`, n) + strings.Repeat(`]`, n) + `}`)
	}
	for _, n := range []int{maxDepth - 2, maxDepth - 1, maxDepth, maxDepth + 1} {
		checkScrubBodySame(t, nil, deep(n))
	}
}

// FuzzScrubBody holds scrubBody to the reference on arbitrary bodies.
func FuzzScrubBody(f *testing.F) {
	for _, s := range scrubSeeds {
		f.Add([]byte(s))
	}
	e := testEngine(f)
	f.Fuzz(func(t *testing.T, in []byte) {
		checkScrubBodySame(t, e, in)
	})
}

// checkScanSame fails unless validJSON agrees with jsontext (duplicate
// names allowed, as for providers' answers) and takeUsageJSON reads the
// same counts as takeUsage does from the decoded object.
func checkScanSame(t *testing.T, b []byte) {
	if got, want := validJSON(b), jsontext.Value(b).IsValid(jsontext.AllowDuplicateNames(true)); got != want {
		t.Fatalf("%q: validJSON %v, jsontext %v", b, got, want)
	}
	if !validJSON(b) {
		return
	}
	var v any
	if decode(b, &v) != nil {
		t.Fatalf("%q: valid but encoding/json cannot decode it", b)
	}
	var got, want request
	got.takeUsageJSON(b)
	want.takeUsage(v)
	if got.usage != want.usage || got.reported != want.reported {
		t.Fatalf("%q: usage %+v %v, from the tree %+v %v", b, got.usage, got.reported, want.usage, want.reported)
	}
}

var scanSeeds = []string{
	`{"prompt_tokens":12,"completion_tokens":5,"total_tokens":17}`,
	`{"input_tokens":3,"cache_creation_input_tokens":4,"cache_read_input_tokens":5,"output_tokens":6}`,
	`{"input_tokens":3,"input_tokens":9}`, `{"input_tokens":"3"}`, `{"input_tokens":3.5}`, `{"input_tokens":-3}`, `{"input_tokens":1e2}`,
	`{"in\u0070ut_tokens":7}`, `{"input_tokens":99999999999999999999}`, `{"output_tokens":null}`, `[1,2]`, `"x"`, `7`, ` true `, `{"a":{"b":[{}]}}`,
	`{"a":1,"a":2}`, "{\"a\":\"\xff\"}", `{"a":"\ud800"}`, `{"a":1,}`, `[1,]`, `{"a" 1}`, `01`, `{} {}`, `nul`,
}

// TestJSONScan holds the answer-side scanner to jsontext and encoding/json.
func TestJSONScan(t *testing.T) {
	for _, s := range append(scanSeeds, scrubSeeds...) {
		checkScanSame(t, []byte(s))
	}
}

// FuzzJSONScan is TestJSONScan on arbitrary input.
func FuzzJSONScan(f *testing.F) {
	for _, s := range append(scanSeeds, scrubSeeds...) {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		checkScanSame(t, b)
	})
}

// TestScrubBodyKeepsEscapes checks a redacted string keeps the caller's
// escapes around the placeholders (the raw text is spliced, not re-quoted).
func TestScrubBodyKeepsEscapes(t *testing.T) {
	in := `{"model":"x","input":"\tkey:\n\"ghp_q7Xk2mPz9LwR4tYv8NcB3hJd6FgS1aQe5ZuW\"\n\u00e9t\u00e9 \ud83d\ude00 dana.ops@northwind-traders.com\u0021"}`
	out, _, err := scrubBody(nil, []byte(in), newScrubber(testEngine(t)), false)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"model":"x","input":"\tkey:\n\"[[SECRET_1]]\"\n\u00e9t\u00e9 \ud83d\ude00 [[EMAIL_1]]\u0021"}`
	if string(out) != want {
		t.Errorf("got  %s\nwant %s", out, want)
	}
}

// TestScrubBodyManyEscapes checks a string with a long run of escapes
// before its finding is redacted exactly as the reference does, its
// escapes kept as they came.
func TestScrubBodyManyEscapes(t *testing.T) {
	const n = 1<<16 + 10
	body := `{"model":"m","input":"` + strings.Repeat(`\n`, n) + ` ghp_q7Xk2mPz9LwR4tYv8NcB3hJd6FgS1aQe5ZuW \u00e9"}`
	checkScrubBodySame(t, testEngine(t), []byte(body))
	out, _, err := scrubBody(nil, []byte(body), newScrubber(testEngine(t)), false)
	if err != nil || bytes.Contains(out, []byte("ghp_")) || !bytes.Contains(out, []byte("[[SECRET_1]]")) {
		tail := out[max(0, len(out)-100):]
		t.Fatalf("not redacted (%v): …%q", err, tail)
	}
	if c := bytes.Count(out, []byte(`\n`)); c != n || !bytes.Contains(out, []byte(`\u00e9`)) {
		t.Errorf("escapes not kept: %d of %d \\n", c, n)
	}
}

// unquote returns the unescaped text of JSON string contents raw.
func unquote(raw string) []byte {
	_, text, _, _ := scanUnescape(nil, []byte(`"`+raw+`"`), 0)
	return text
}

// TestRawCursor checks the mapping from the unescaped text to the raw
// string against the definition: x maps to the raw offset r that starts a
// character (a plain byte that is no UTF-8 continuation, or an escape, or
// the end) and whose prefix unescapes to x bytes; an x inside an escape's
// expansion or a UTF-8 sequence maps to nothing. Each x is asked of a
// fresh cursor and, in order, of one cursor (which a miss leaves usable).
func TestRawCursor(t *testing.T) {
	for _, raw := range []string{
		``, `abc`, `\n`, `a\nb`, `\\\"\/`, `\u00e9t\u00e9`, `é\tü`, `\ud83d\ude00x`,
		`ab\u0021\u20ac€\r\n\t\"`, `x\u005b\u005bSECRET_1]]`, `日本\u65e5本`,
	} {
		starts := map[int]int{} // unescaped offset → raw offset of a character start
		for r := 0; r <= len(raw); {
			starts[len(unquote(raw[:r]))] = r
			if r == len(raw) {
				break
			}
			if raw[r] == '\\' {
				r += escapeLen([]byte(raw[r:]))
			} else {
				_, size := utf8.DecodeRuneInString(raw[r:])
				r += size
			}
		}
		text := unquote(raw)
		seq := rawCursor{raw: []byte(raw)}
		for x := 0; x <= len(text); x++ {
			want, wantOK := starts[x]
			fresh := rawCursor{raw: []byte(raw)}
			for _, c := range []*rawCursor{&fresh, &seq} {
				got, ok := c.at(x)
				if ok != wantOK || ok && got != want {
					t.Errorf("%q: at(%d) = %d, %v; want %d, %v", raw, x, got, ok, want, wantOK)
				}
			}
		}
		past := rawCursor{raw: []byte(raw)}
		if got, ok := past.at(len(text) + 1); ok {
			t.Errorf("%q: at(%d), past the end, = %d", raw, len(text)+1, got)
		}
	}
}

// TestJSONEscape holds jsonEscape's fast path to encoding/json's output.
func TestJSONEscape(t *testing.T) {
	cases := []string{"", "ghp_q7Xk2mPz9LwR4tYv8NcB3hJd6FgS1aQe5ZuW", "dana.ops@northwind-traders.com", "a<b>&c", "é", "\u2028", "a\xffb", "\x7f", "tab\there"}
	for c := 0; c < 256; c++ {
		cases = append(cases, "x"+string(rune(c))+"y", "x"+string([]byte{byte(c)})+"y")
	}
	for _, v := range cases {
		b, err := marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := jsonEscape(v), string(b[1:len(b)-1]); got != want {
			t.Errorf("jsonEscape(%q) = %q, want %q", v, got, want)
		}
	}
}

// TestSpliceFailureClears checks that a splice given up halfway leaves out
// as it was and clears what it had written past it: out may be a pooled
// buffer, which release clears only up to out's length.
func TestSpliceFailureClears(t *testing.T) {
	// é escaped (2 bytes unescaped), a, b, é escaped, c: the second
	// finding starts inside the second é's expansion.
	raw := []byte(`\u00e9ab\u00e9c`)
	fs := []redact.Finding{{Start: 0, End: 2, Placeholder: "[[SECRET_1]]"}, {Start: 5, End: 7, Placeholder: "[[SECRET_2]]"}}
	p := bodyParser{out: append(make([]byte, 0, 64), `{"a":`...)}
	if p.splice(raw, fs) {
		t.Fatalf("spliced across an escape's expansion: %q", p.out)
	}
	if string(p.out) != `{"a":` || !zeroed(p.out[len(p.out):cap(p.out)]) {
		t.Fatalf("out %q, and past it %q", p.out, p.out[len(p.out):cap(p.out)])
	}
}
