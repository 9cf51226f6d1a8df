package gateway

import (
	"bytes"
	"encoding/json"
	"reflect"
	"regexp"
	"strings"
	"testing"

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
		got, top, err := scrubBody([]byte(in), newScrubber(e), false)
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
		if _, _, err := scrubBody([]byte(in), sc, true); err == nil {
			t.Errorf("accepted %q", in)
		}
	}
}

// TestScrubBodyTop checks the routing fields and the stream_options added
// to streaming chat requests.
func TestScrubBodyTop(t *testing.T) {
	out, top, err := scrubBody([]byte(`{"model":"gpt","stream":true,"max_completion_tokens":77,"messages":[{"role":"user","content":"hi","max_tokens":5}]}`), nil, true)
	if err != nil {
		t.Fatal(err)
	}
	if top.model != "gpt" || !top.stream || top.maxTokens != 77 || top.streamOptions {
		t.Errorf("top %+v", top)
	}
	if !bytes.HasSuffix(out, []byte(`,"stream_options":{"include_usage":true}}`)) {
		t.Errorf("no stream_options added: %s", out)
	}
	out, top, err = scrubBody([]byte(`{"model":"gpt","stream":true,"stream_options":{"include_usage":false}}`), nil, true)
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
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, _, err := scrubBody(body, newScrubber(e), true); err != nil {
			b.Fatal(err)
		}
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
	out, _, err := scrubBody([]byte(in), sc, false)
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
		if _, _, err := scrubBody([]byte(in), nil, false); err != errDuplicateName {
			t.Errorf("%s: %v, want the duplicate-name error", in, err)
		}
	}
}
