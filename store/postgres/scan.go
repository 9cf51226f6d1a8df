package postgres

import (
	"encoding/json"
	"fmt"
	"time"
)

// scanner is a pgx.Row or pgx.Rows.
type scanner interface{ Scan(dest ...any) error }

// timeCol scans a BIGINT microsecond column into a time.Time.
type timeCol struct{ t *time.Time }

// Scan implements sql.Scanner, which pgx honours.
func (c timeCol) Scan(v any) error {
	x, ok := v.(int64)
	if !ok {
		return fmt.Errorf("time column holds %T, want bigint", v)
	}
	*c.t = fromMicros(x)
	return nil
}

// nullTimeCol scans a nullable BIGINT microsecond column into a *time.Time.
type nullTimeCol struct{ t **time.Time }

// Scan implements sql.Scanner, which pgx honours.
func (c nullTimeCol) Scan(v any) error {
	switch x := v.(type) {
	case nil:
		*c.t = nil
	case int64:
		t := fromMicros(x)
		*c.t = &t
	default:
		return fmt.Errorf("time column holds %T, want bigint or null", v)
	}
	return nil
}

// jsonCol scans a JSONB column into v.
type jsonCol struct{ v any }

// Scan implements sql.Scanner, which pgx honours.
func (c jsonCol) Scan(v any) error {
	var b []byte
	switch x := v.(type) {
	case string:
		b = []byte(x)
	case []byte:
		b = x
	case nil:
		return nil
	default:
		return fmt.Errorf("json column holds %T, want text", v)
	}
	return json.Unmarshal(b, c.v)
}

// jsonText encodes v as JSON text for a JSONB parameter.
func jsonText(v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("postgres: encode json column: %w", err)
	}
	return string(b), nil
}
