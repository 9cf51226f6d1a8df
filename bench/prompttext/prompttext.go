// Package prompttext holds the text of the benchmarks' code review
// prompt, so the gateway benchmark and the redaction micro-benchmarks
// measure the same text.
package prompttext

import (
	"fmt"
	"strings"
)

// Intro opens the user message: a question, then the start of a Go file.
const Intro = "Can you review this client package? It is slow under load and I think the retry loop leaks connections.\n\n```go\npackage inventory\n\n"

// Planted formats the file's header with an email address, a GitHub token
// and an AWS access key id, the values a redactor must find.
func Planted(email, githubToken, awsKeyID string) string {
	return fmt.Sprintf("// Maintainer: %s\n\nconst (\n\tgithubToken = %q // TODO: move to the vault\n\tawsKeyID    = %q\n)\n", email, githubToken, awsKeyID)
}

// AppendCode appends Go code to b, a client type per name in turn, until b
// holds at least n bytes: plain code with no secret in it.
func AppendCode(b *strings.Builder, n int) {
	for i := 0; b.Len() < n; i++ {
		name := names[i%len(names)]
		fmt.Fprintf(b, codeBlock, name, strings.ToLower(name))
	}
}

var names = []string{"Inventory", "Orders", "Shipping", "Billing", "Catalog", "Returns", "Pricing", "Warehouse", "Suppliers", "Invoices"}

// codeBlock is repeated, its names varied, to fill the message.
const codeBlock = `
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
