package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/custos-dev/custos"
)

// TestReplicas_GatewayBudget proves a token budget holds across three
// replicas on one PostgreSQL: 200 concurrent model requests spread over the
// replicas, all held at the provider until every one was either refused or
// is waiting there, so every reservation is concurrent. Exactly floor(N/W)
// pass; the rest get 429; afterwards nothing stays reserved.
func TestReplicas_GatewayBudget(t *testing.T) {
	c := startCluster(t, 3)
	ctx := context.Background()
	owner := c.replicas[0].client(t, c.owner, "cli")
	fp := newFakeProvider(t)
	if _, err := owner.AddProvider(ctx, custos.AddProviderInput{Name: "lab", Kind: custos.ProviderLocal, BaseURL: fp.BaseURL(), Models: []string{"budget-gpt"}}); err != nil {
		t.Fatal(err)
	}
	_, tok, err := owner.CreateKey(ctx, custos.CreateKeyInput{Name: "agent", Role: custos.RoleAgent})
	if err != nil {
		t.Fatal(err)
	}
	const maxTokens, total, want = 100, 200, 37
	body := `{"model":"budget-gpt","max_tokens":100,"messages":[{"role":"user","content":"replicated budget"}]}`
	client := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: total}}
	post := func(r int) (int, string, error) {
		req, _ := http.NewRequest(http.MethodPost, c.replicas[r].url+"/v1/chat/completions", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), nil
	}
	// Calibrate the worst case W of one request, with no budget yet.
	if st, b, err := post(1); err != nil || st != http.StatusOK {
		t.Fatalf("calibration: %d %s %v", st, b, err)
	}
	w := int64(len(fp.Requests()[0].Body)) + maxTokens
	limit := want*w + w/2
	if _, err := owner.SetBudget(ctx, custos.Budget{Period: custos.PeriodDay, Limit: limit}); err != nil {
		t.Fatal(err)
	}

	var arrived atomic.Int64
	release := make(chan struct{})
	arrive := func() {
		if arrived.Add(1) == total {
			close(release)
		}
	}
	var timedOut atomic.Bool
	fp.mu.Lock()
	fp.hold = func() {
		arrive()
		select {
		case <-release:
		case <-time.After(30 * time.Second):
			timedOut.Store(true)
		}
	}
	fp.mu.Unlock()

	var ok, refused atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan string, total)
	for i := range total {
		wg.Go(func() {
			st, b, err := post(i % 3)
			switch {
			case err != nil:
				errs <- err.Error()
				arrive()
			case st == http.StatusOK:
				ok.Add(1)
			case st == http.StatusTooManyRequests && strings.Contains(b, "Token budget exhausted"):
				refused.Add(1)
				arrive()
			default:
				errs <- fmt.Sprintf("%d %s", st, b)
				arrive()
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Errorf("request: %s", e)
	}
	if timedOut.Load() {
		t.Errorf("the barrier timed out: %d of %d arrived", arrived.Load(), total)
	}
	if ok.Load() != want || refused.Load() != total-want {
		t.Fatalf("%d passed and %d were refused over three replicas; want floor(N/W) = %d of %d (W=%d, N=%d)", ok.Load(), refused.Load(), want, total, w, limit)
	}
	// Settlements land after the answers: poll until nothing is reserved.
	deadline := time.Now().Add(10 * time.Second)
	for {
		bs, err := owner.ListBudgets(ctx)
		if err != nil || len(bs) != 1 {
			t.Fatalf("budgets: %v %v", bs, err)
		}
		if bs[0].Reserved == 0 {
			if bs[0].Spent > limit {
				t.Fatalf("spent %d over the limit %d", bs[0].Spent, limit)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still reserved after the answers: %+v", bs[0])
		}
		time.Sleep(50 * time.Millisecond)
	}
}
