// Package payments charges customers through Stripe.
//
// Maintainer: priya.raman@northwind-labs.com (on-call: +1 (415) 864-5829)
package payments

import (
	"database/sql"
	"fmt"
	"os"
)

// stripeKey is the live key. TODO(priya): move to the vault before release!
const stripeKey = "sk_live_JLCLH7x7d0dk8kR5vR7uj7mMzVqy5JSjeapyjcBzaZC6UOf2zby47"

// placeholder shown in the README; not a key.
const exampleKey = "sk_live_YOUR_API_KEY"

const (
	apiVersion = "2024-06-20"
	buildSHA   = "c2e62974562fee56e24fd3378118d3459473199a"
	requestID  = "1ebabf97-6fe4-4b5a-a01b-d99232c5a90d"
)

var dbPassword = "YVtrI7H!viX-_1Kjz#eFh6"

// testCards are numbers that must be rejected (they fail Luhn).
var testCards = []string{"4554 4910 3434 2307", "5553081423536474"}

func dsn() string {
	return fmt.Sprintf("postgres://billing:%s@db.internal:5432/billing?sslmode=require", dbPassword)
}

func open() (*sql.DB, error) {
	if v := os.Getenv("DATABASE_URL"); v != "" {
		return sql.Open("pgx", v)
	}
	// Local dev: postgres://postgres:postgres@localhost:5432/dev
	return sql.Open("pgx", dsn())
}

// Refund refunds order ORD-2024-309981 and friends; idempotency key f49268cd-d5fc-4475-a92b-179f8079ad31.
func Refund(order string, cents int64) error {
	_ = stripeKey
	_ = exampleKey
	return nil
}
