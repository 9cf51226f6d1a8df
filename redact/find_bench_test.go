package redact_test

import (
	"strings"
	"testing"

	"github.com/custos-dev/custos/bench/prompttext"
	"github.com/custos-dev/custos/redact"
	"github.com/custos-dev/custos/redact/pii"
)

// benchCodePrompt is the 8 KB code review prompt of the gateway benchmark:
// Go code with a GitHub token, an AWS key id and an email planted.
func benchCodePrompt() []byte {
	var u strings.Builder
	u.WriteString(prompttext.Intro)
	u.WriteString(prompttext.Planted("dana.xyzabc@northwind-traders.com", "ghp_q7Xk2mPz9LwR4tYv8NcB3hJd6FgS1aQe5ZuW", "AKIAQ7XK2MPZ2LWR4TYV"))
	prompttext.AppendCode(&u, 8000)
	return []byte(u.String())
}

func BenchmarkFind_Code(b *testing.B) {
	e, _ := redact.New(redact.Config{Secrets: true, Detectors: pii.Detectors(pii.DefaultConfig())})
	p := benchCodePrompt()
	b.SetBytes(int64(len(p)))
	for b.Loop() {
		e.Find(p)
	}
}
func BenchmarkFind_CodeSecrets(b *testing.B) {
	e, _ := redact.New(redact.Config{Secrets: true})
	p := benchCodePrompt()
	b.SetBytes(int64(len(p)))
	for b.Loop() {
		e.Find(p)
	}
}
func BenchmarkFind_CodePII(b *testing.B) {
	e, _ := redact.New(redact.Config{Detectors: pii.Detectors(pii.DefaultConfig())})
	p := benchCodePrompt()
	b.SetBytes(int64(len(p)))
	for b.Loop() {
		e.Find(p)
	}
}

// BenchmarkACScan measures the keyword scan of Find alone.
func BenchmarkACScan(b *testing.B) {
	e, _ := redact.New(redact.Config{Secrets: true})
	p := benchCodePrompt()
	b.SetBytes(int64(len(p)))
	for b.Loop() {
		redact.ScanKeywords(e, p)
	}
}

// BenchmarkNew is what an org's engine costs to build: custos rebuilds it
// whenever the org's stored values change, on the next request's path.
func BenchmarkNew(b *testing.B) {
	cfg := redact.Config{Secrets: true, Detectors: pii.Detectors(pii.DefaultConfig()),
		Known: []string{"correct-horse-battery-staple", "s3cr3t-database-password-for-prod"}}
	for b.Loop() {
		if _, err := redact.New(cfg); err != nil {
			b.Fatal(err)
		}
	}
}
