package column_test

import (
	"testing"
	"time"

	"github.com/custos-dev/custos/store/internal/column"
)

func TestColumns(t *testing.T) {
	// Ensure times round-trip at microsecond precision in UTC, NULL scans to
	// nil, and JSON text scans back.
	var got time.Time
	if err := column.Time(&got).Scan(int64(1700000000123456)); err != nil || got != time.UnixMicro(1700000000123456).UTC() {
		t.Fatalf("time=%v err=%v", got, err)
	}
	if err := column.Time(&got).Scan("x"); err == nil {
		t.Fatal("text accepted as time")
	}
	p := &got
	if err := column.NullTime(&p).Scan(nil); err != nil || p != nil {
		t.Fatalf("null time=%v err=%v", p, err)
	}
	s, err := column.JSONText(map[string]string{"env": "prod"})
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]string
	if err := column.JSON(&m).Scan(s); err != nil || m["env"] != "prod" {
		t.Fatalf("json=%v err=%v", m, err)
	}
}
