package main

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/custos-dev/custos"
)

func TestReplicas_TaskSingleUse(t *testing.T) {
	// Ensure single use holds across processes: three replicas on one
	// PostgreSQL, 500 concurrent exchanges of one launch code spread over
	// them give exactly one permit, and 500 concurrent uses of one request
	// key exactly one success, whose next key then works.
	c := startCluster(t, 3, "--rate-key", "off", "--rate-ip", "off", "--rate-auth-fail", "off")
	ctx := context.Background()
	admin := c.replicas[0].client(t, c.owner, "admin")
	_, install, err := admin.CreateTrackerInstall(ctx, "jira-prod")
	if err != nil {
		t.Fatal(err)
	}
	anon := make([]taskAPI, len(c.replicas))
	for i, r := range c.replicas {
		anon[i] = r.client(t, "", "tracker")
	}
	g, err := anon[1].StartTrackerSession(ctx, install)
	if err != nil {
		t.Fatal(err)
	}
	const n = 500

	var wins atomic.Int32
	var winner atomic.Value
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Go(func() {
			<-start
			_, next, err := anon[i%3].CreateLaunchLink(ctx, install, g.RequestKey, custos.LaunchLinkInput{ProjectID: "PROJ", TaskID: "PROJ-1"})
			switch {
			case err == nil:
				wins.Add(1)
				winner.Store(next)
			case custos.ErrorCode(err) != custos.EUNAUTHORIZED || next != "":
				t.Errorf("request key loser %d: next=%t err=%v", i, next != "", err)
			}
		})
	}
	close(start)
	wg.Wait()
	if got := wins.Load(); got != 1 {
		t.Fatalf("%d uses of one request key succeeded, want exactly 1", got)
	}
	link, _, err := anon[2].CreateLaunchLink(ctx, install, winner.Load().(string), custos.LaunchLinkInput{ProjectID: "PROJ", TaskID: "PROJ-2"})
	if err != nil {
		t.Fatalf("the winner's next key: %v", err)
	}
	if got := countActions(t, admin, custos.ActionRequestKeyReplay, custos.OutcomeDenied); got != n-1 {
		t.Fatalf("%d refused request keys audited, want %d", got, n-1)
	}

	wins.Store(0)
	start = make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Go(func() {
			<-start
			_, err := anon[i%3].ExchangeLaunchCode(ctx, custos.LaunchExchangeInput{Code: link.Code, ProjectID: "PROJ", TaskID: "PROJ-2"})
			if err == nil {
				wins.Add(1)
			} else if custos.ErrorCode(err) != custos.EUNAUTHORIZED {
				t.Errorf("exchange loser %d: %v", i, err)
			}
		})
	}
	close(start)
	wg.Wait()
	if got := wins.Load(); got != 1 {
		t.Fatalf("%d exchanges of one code succeeded, want exactly 1", got)
	}
	if got := countActions(t, admin, custos.ActionLaunchExchange, custos.OutcomeOK); got != 1 {
		t.Fatalf("%d launch.exchange ok records, want 1", got)
	}
	c.verify(t)
}
