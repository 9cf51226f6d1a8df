package storetest

import (
	"os"
	"testing"
)

// PostgresURL returns CUSTOS_TEST_POSTGRES_URL, the URL of a PostgreSQL
// superuser on a throwaway server. Without it the test is skipped, unless
// CUSTOS_REQUIRE_SERVICES=1 (CI sets it): then the test fails, so a run that
// was meant to cover PostgreSQL cannot pass by skipping.
func PostgresURL(tb testing.TB) string {
	tb.Helper()
	return serviceURL(tb, "CUSTOS_TEST_POSTGRES_URL")
}

// RedisURL returns CUSTOS_TEST_REDIS_URL, the URL of a throwaway Redis
// server, skipping or failing the test like PostgresURL when it is unset.
func RedisURL(tb testing.TB) string {
	tb.Helper()
	return serviceURL(tb, "CUSTOS_TEST_REDIS_URL")
}

// serviceURL returns the environment variable name, or skips (fails with
// CUSTOS_REQUIRE_SERVICES=1) when it is empty.
func serviceURL(tb testing.TB, name string) string {
	tb.Helper()
	if v := os.Getenv(name); v != "" {
		return v
	}
	if os.Getenv("CUSTOS_REQUIRE_SERVICES") == "1" {
		tb.Fatalf("%s is not set but CUSTOS_REQUIRE_SERVICES=1: start the services with `eval \"$(scripts/services.sh start)\"`", name)
	}
	tb.Skipf("%s is not set; skipping (scripts/services.sh starts a server)", name)
	return ""
}
