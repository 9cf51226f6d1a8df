package custos

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"strconv"
	"time"
)

// ID prefixes. An id names an object; it is not a credential and may appear
// in logs and audit records.
const (
	PrefixOrg          = "org"
	PrefixKey          = "key"
	PrefixDevice       = "dev"
	PrefixSecret       = "sec"
	PrefixPolicy       = "pol"
	PrefixSession      = "ses"
	PrefixConfirmation = "cfm"
	PrefixOutbox       = "obx"
	PrefixUsage        = "use"
)

// NewID returns prefix + "_" + 16 random hex digits.
func NewID(prefix string) string {
	var b [8]byte
	randomBytes(b[:])
	return prefix + "_" + hex.EncodeToString(b[:])
}

// NewTimeID returns prefix + "_" + 12 hex digits of t in Unix milliseconds
// (0 before 1970) + 16 random hex digits: ids of one prefix sort by time,
// so a table keyed by them grows at one end (an index of random ids
// touches a page anywhere in it for every insert, and slows down as the
// table grows). For rows written in bulk, such as usage records.
func NewTimeID(prefix string, t time.Time) string {
	var b [2 + 6 + 8]byte
	binary.BigEndian.PutUint64(b[:8], uint64(max(t.UnixMilli(), 0))) // #nosec G115 -- not negative; 48 bits last until the year 10889
	randomBytes(b[8:])
	return prefix + "_" + hex.EncodeToString(b[2:])
}

// randomBytes fills b from crypto/rand.
func randomBytes(b []byte) {
	if _, err := rand.Read(b); err != nil {
		panic("custos: crypto/rand failed: " + err.Error()) // never happens on supported platforms
	}
}

// Duration is a time.Duration that encodes in JSON as a Go duration string
// ("72h", "30m"), the form users type on the command line.
type Duration time.Duration

// MarshalJSON implements json.Marshaler.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON implements json.Unmarshaler. It accepts a duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return Errorf(EINVALID, "invalid duration: want a string such as \"30m\" or \"72h\"")
	}
	v, err := ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// ParseDuration parses a Go duration string and also accepts a day suffix
// ("7d"). Negative durations are rejected.
func ParseDuration(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	if n := len(s); n > 1 && s[n-1] == 'd' {
		days, err := strconv.Atoi(s[:n-1])
		if err != nil || days < 0 || days > 3650 {
			return 0, Errorf(EINVALID, "invalid duration %q: use a form such as 30m, 72h or 7d", truncate(s))
		}
		return time.Duration(days) * 24 * time.Hour, nil
	}
	v, err := time.ParseDuration(s)
	if err != nil || v < 0 {
		return 0, Errorf(EINVALID, "invalid duration %q: use a form such as 30m, 72h or 7d", truncate(s))
	}
	return v, nil
}
