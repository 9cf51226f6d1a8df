package gateway

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestParseModels(t *testing.T) {
	// Ensure a listing's names are taken in order, once, valid ones only, Google's "models/" dropped, at most maxCatalogModels.
	ids, err := parseModels([]byte(`{"data":[{"id":"a"},{"id":"models/gemini-2.5-pro"},{"id":"a"},{"id":"b c"},{"id":"llama3:8b"},{"id":null},{"id":["x"]},{"id":"ok@v1+x/y_z.1-2"}]}`))
	if err != nil || strings.Join(ids, ",") != "a,gemini-2.5-pro,llama3:8b,ok@v1+x/y_z.1-2" {
		t.Fatalf("%q %v", ids, err)
	}
	var b strings.Builder
	b.WriteString(`{"data":[`)
	for i := range maxCatalogModels + 10 {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"id":"m-` + strings.Repeat("x", i%100) + string(rune('a'+i%26)) + `-` + itoa(int64(i)) + `"}`)
	}
	b.WriteString(`]}`)
	if ids, err := parseModels([]byte(b.String())); err != nil || len(ids) != maxCatalogModels {
		t.Fatalf("%d names, %v", len(ids), err)
	}
	for _, bad := range []string{``, `null`, `[]`, `{}`, `{"data":null}`, `{"data":{}}`, `{"data":"x"}`, `{"data":[1]`} {
		if ids, err := parseModels([]byte(bad)); err == nil && len(ids) > 0 {
			t.Errorf("%q: %q", bad, ids)
		}
	}
}

func FuzzParseModels(f *testing.F) {
	for _, s := range []string{`{"data":[{"id":"gpt-4o"},{"id":"models/x"}]}`, `{"data":[]}`, `{"data":[{"id":"\u0000"}]}`, `{"object":"list"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ids, err := parseModels(b)
		if err != nil && ids != nil {
			t.Fatalf("names with an error: %q", ids)
		}
		if err == nil && !json.Valid(b) {
			t.Fatalf("accepted invalid JSON %q", b)
		}
		seen := map[string]bool{}
		for _, id := range ids {
			if !modelName(id) || seen[id] {
				t.Fatalf("listed %q from %q", id, b)
			}
			seen[id] = true
		}
		if len(ids) > maxCatalogModels {
			t.Fatalf("%d names", len(ids))
		}
	})
}
