package mcp_test

import (
	"encoding/base64"
	"encoding/hex"
	"net/url"
	"strings"
	"testing"

	"github.com/custos-dev/custos"
	"github.com/custos-dev/custos/mcp"
)

func TestMasker_Mask(t *testing.T) {
	const v = "s3cr3t/value+with=odd&chars"
	m := mcp.NewMasker([]*custos.SecretValue{{Name: "TOKEN", Value: v}, {Name: "PIN", Value: "42"}, {Name: "EMPTY"}})
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	for _, tc := range []struct {
		name, in, want string
		n              int
	}{
		// Ensure the raw value is masked.
		{"Raw", "token=" + v + "\n", "token=[masked:TOKEN]\n", 1},
		// Ensure each encoded form is masked.
		{"Base64Std", b64(v), "[masked:TOKEN]", 1},
		{"Base64URL", base64.URLEncoding.EncodeToString([]byte(v)), "[masked:TOKEN]", 1},
		{"Base64Raw", base64.RawStdEncoding.EncodeToString([]byte(v)), "[masked:TOKEN]", 1},
		{"HexLower", hex.EncodeToString([]byte(v)), "[masked:TOKEN]", 1},
		{"HexUpper", strings.ToUpper(hex.EncodeToString([]byte(v))), "[masked:TOKEN]", 1},
		{"QueryEscape", "?t=" + url.QueryEscape(v), "?t=[masked:TOKEN]", 1},
		{"PathEscape", "/" + url.PathEscape(v), "/[masked:TOKEN]", 1},
		// Ensure a value shorter than 4 bytes is masked too.
		{"Short", "pin 42!", "pin [masked:PIN]!", 1},
		// Ensure several occurrences are all counted.
		{"Many", v + " " + v, "[masked:TOKEN] [masked:TOKEN]", 2},
		// Ensure output without values is unchanged.
		{"None", "all good\n", "all good\n", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, n := m.Mask(tc.in)
			if got != tc.want || n != tc.n {
				t.Fatalf("Mask(%q) = %q, %d; want %q, %d", tc.in, got, n, tc.want, tc.n)
			}
		})
	}
	t.Run("EmbeddedBase64", func(t *testing.T) {
		// Ensure the value inside a longer base64-encoded text (echo adds a newline,
		// or a prefix shifts the alignment) leaves no recognizable part.
		for _, text := range []string{v + "\n", "x" + v, "xy" + v + "\n", "TOKEN=" + v} {
			enc := b64(text)
			got, _ := m.Mask(enc)
			if got == enc {
				t.Fatalf("base64 of %q not masked", text)
			}
			core := base64.RawStdEncoding.EncodeToString([]byte(v))[:12]
			if strings.Contains(got, core) {
				t.Fatalf("base64 of %q still shows part of the value: %q", text, got)
			}
		}
	})
}

func TestMasker_MaskOutput(t *testing.T) {
	const v = "abcdefgh-secret-0123"
	m := mcp.NewMasker([]*custos.SecretValue{{Name: "S", Value: v}})
	t.Run("Truncated", func(t *testing.T) {
		// Ensure output over MaxOutputBytes is cut and says so.
		raw := strings.Repeat("x", mcp.MaxOutputBytes+100) + v
		got, cut, _ := m.MaskOutput([]byte(raw))
		if !cut || len(got) > mcp.MaxOutputBytes+64 || !strings.HasSuffix(got, "[custos: output truncated]") {
			t.Fatalf("cut=%v len=%d", cut, len(got))
		}
	})
	t.Run("CutAtCaptureLimit", func(t *testing.T) {
		// Ensure a value cut by the capture limit does not show in part, even when
		// masking shrinks the output under MaxOutputBytes.
		long := strings.Repeat("L0ng-secret-", 100) // masking shrinks it 100 times
		lm := mcp.NewMasker([]*custos.SecretValue{{Name: "S", Value: long}})
		raw := strings.Repeat(long, (mcp.CaptureLimit-10)/len(long))
		raw += strings.Repeat("x", mcp.CaptureLimit-10-len(raw)) + long + "tail" // crosses the limit
		m, v := lm, long
		got, cut, n := m.MaskOutput([]byte(raw))
		if !cut || n == 0 || strings.Contains(got, v[:10]) {
			t.Fatalf("cut=%v n=%d, shows a part of the value: %v", cut, n, strings.Contains(got, v[:10]))
		}
	})
}
