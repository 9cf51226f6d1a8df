package main

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// BenchmarkReveal measures one audited value read over real HTTP on
// loopback against a server started through Main (client and server share
// the process, so the profile shows both).
func BenchmarkReveal(b *testing.B) {
	e := MustStartE2E(b, "--log-level", "error")
	e.MustCLI(b, e.Owner, "cli", "bench-value-123\n", "secret", "set", "A", "--project", "web")
	e.Remember("bench-value-123")
	alice := e.MustMemberKey(b, "alice")
	e.MustApprove(b, alice, "cli", "read")
	url := e.Main.URL() + "/v1/secrets/access"
	body := `{"project":"web","names":["A"],"mode":"reveal"}`
	tr := &http.Transport{MaxIdleConnsPerHost: 256}
	c := &http.Client{Transport: tr}
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest("POST", url, strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+alice)
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("X-Custos-Agent", "cli")
			req.Header.Set("X-Custos-Hostname", "laptop")
			req.Header.Set("X-Custos-User", "alice")
			resp, err := c.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
}
