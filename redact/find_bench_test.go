package redact_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/custos-dev/custos/redact"
	"github.com/custos-dev/custos/redact/pii"
)

const benchCodeBlock = `
// %[1]sClient talks to the %[1]s API.
type %[1]sClient struct {
	base    string
	http    *http.Client
	retries int
}

// Fetch%[1]s returns the items of page, retrying on 5xx answers.
func (c *%[1]sClient) Fetch%[1]s(ctx context.Context, page int) ([]Item, error) {
	var lastErr error
	for attempt := 0; attempt <= c.retries; attempt++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%%s/items?page=%%d", c.base, page), nil)
		if err != nil {
			return nil, err
		}
		resp, err := c.http.Do(req)
		if err != nil {
			lastErr = err
			continue
		}
		if resp.StatusCode >= 500 {
			lastErr = fmt.Errorf("%[2]s: status %%d", resp.StatusCode)
			time.Sleep(time.Duration(attempt) * 100 * time.Millisecond)
			continue
		}
		var out struct{ Items []Item }
		err = json.NewDecoder(resp.Body).Decode(&out)
		resp.Body.Close()
		return out.Items, err
	}
	return nil, lastErr
}
`

// benchCodePrompt is the 8 KB code review prompt of the gateway benchmark:
// Go code with a GitHub token, an AWS key id and an email planted.
func benchCodePrompt() []byte {
	var u strings.Builder
	u.WriteString("Can you review this client package? It is slow under load and I think the retry loop leaks connections.\n\n```go\npackage inventory\n\n")
	fmt.Fprintf(&u, "// Maintainer: %s\n\nconst (\n\tgithubToken = %q // TODO: move to the vault\n\tawsKeyID    = %q\n)\n", "dana.xyzabc@northwind-traders.com", "ghp_q7Xk2mPz9LwR4tYv8NcB3hJd6FgS1aQe5ZuW", "AKIAQ7XK2MPZ2LWR4TYV")
	names := []string{"Inventory", "Orders", "Shipping", "Billing", "Catalog", "Returns", "Pricing", "Warehouse", "Suppliers", "Invoices"}
	for i := 0; u.Len() < 8000; i++ {
		n := names[i%len(names)]
		fmt.Fprintf(&u, benchCodeBlock, n, strings.ToLower(n))
	}
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
