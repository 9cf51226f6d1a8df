package ratelimit_test

import (
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"testing"
	"time"

	"github.com/custos-dev/custos/ratelimit"
	"github.com/custos-dev/custos/store/redis"
	"github.com/custos-dev/custos/store/storetest"
)

// Ensure two limiters over one Redis (two replicas) enforce one shared
// limit, including the block after failed authentications.
func TestRedisReplicas(t *testing.T) {
	url := storetest.RedisURL(t)
	cfg := ratelimit.Config{
		PerKey:            ratelimit.Limit{N: 5, Window: time.Minute},
		AuthFailuresPerIP: ratelimit.Limit{N: 2, Window: time.Minute},
	}
	var replicas []*ratelimit.Limiter
	for range 2 {
		s, err := redis.Open(t.Context(), url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		replicas = append(replicas, ratelimit.New(s, cfg, slog.New(slog.DiscardHandler)))
	}
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	keyID, ip := "key_"+hex.EncodeToString(b), "2001:db8:"+hex.EncodeToString(b[:2])+"::1"

	allowed := 0
	for i := range 10 {
		if _, ok := replicas[i%2].AllowKey(t.Context(), keyID); ok {
			allowed++
		}
	}
	if got, want := allowed, 5; got != want {
		t.Fatalf("allowed across replicas=%d, want %d", got, want)
	}

	replicas[0].AuthFailed(t.Context(), ip)
	if _, blocked := replicas[1].AuthBlocked(t.Context(), ip); blocked {
		t.Fatal("blocked after 1 failure, limit 2")
	}
	replicas[1].AuthFailed(t.Context(), ip)
	for i, l := range replicas {
		if retry, blocked := l.AuthBlocked(t.Context(), ip); !blocked || retry <= 0 || retry > time.Minute {
			t.Fatalf("replica %d: AuthBlocked=%s %v, want blocked for at most 1m", i, retry, blocked)
		}
	}
}
