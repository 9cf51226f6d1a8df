// Package column holds the column encodings the SQL backends share: times
// as integer unix microseconds (UTC), maps and lists as JSON text. Both
// store/sqlite and store/postgres use it, so a value round-trips the same
// way in both and an audit event's hash re-computes exactly.
package column

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/custos-dev/custos"
)

// FromMicros returns the UTC time of unix microseconds x.
func FromMicros(x int64) time.Time { return time.UnixMicro(x).UTC() }

// Time returns a scanner of an integer microsecond column into *t.
func Time(t *time.Time) sql.Scanner { return timeCol{t} }

// NullTime returns a scanner of a nullable integer microsecond column into
// *t (nil for NULL).
func NullTime(t **time.Time) sql.Scanner { return nullTimeCol{t} }

// JSON returns a scanner of a JSON text column into v (left as it is for NULL).
func JSON(v any) sql.Scanner { return jsonCol{v} }

// JSONText encodes v as JSON text for a column.
func JSONText(v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("encode json column: %w", err)
	}
	return string(b), nil
}

type timeCol struct{ t *time.Time }

func (c timeCol) Scan(v any) error {
	x, ok := v.(int64)
	if !ok {
		return fmt.Errorf("time column holds %T, want an integer", v)
	}
	*c.t = FromMicros(x)
	return nil
}

type nullTimeCol struct{ t **time.Time }

func (c nullTimeCol) Scan(v any) error {
	switch x := v.(type) {
	case nil:
		*c.t = nil
	case int64:
		t := FromMicros(x)
		*c.t = &t
	default:
		return fmt.Errorf("time column holds %T, want an integer or null", v)
	}
	return nil
}

type jsonCol struct{ v any }

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

// SealedKey returns the ciphertext, wrapped DEK and keeper id columns of a
// model provider: nil, nil and "" (NULL columns) for a provider without a
// key. Returns EINVALID if p.HasKey disagrees with the sealed key it
// carries.
func SealedKey(p *custos.ModelProvider) (ct, dek []byte, keeper string, err error) {
	if !p.HasKey {
		if len(p.Ciphertext) > 0 || len(p.WrappedDEK) > 0 || p.KeeperID != "" {
			return nil, nil, "", custos.Errorf(custos.EINVALID, "provider %q carries a sealed key but is marked as having none", p.Name)
		}
		return nil, nil, "", nil
	}
	if len(p.Ciphertext) == 0 || len(p.WrappedDEK) == 0 {
		return nil, nil, "", custos.Errorf(custos.EINVALID, "provider %q is marked as having a key but carries no sealed key", p.Name)
	}
	return p.Ciphertext, p.WrappedDEK, p.KeeperID, nil
}
