package custos_test

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/custos-dev/custos"
)

func TestValidateName(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{"DB_PASSWORD", true}, {"_X", true}, {"a1", true}, {strings.Repeat("A", 128), true},
		{"", false}, {"1A", false}, {"A-B", false}, {"A B", false}, {"A.B", false}, {"A/B", false},
		{"Ä", false}, {"A\x00", false}, {strings.Repeat("A", 129), false}, {"A'; DROP TABLE secrets", false},
	} {
		// Ensure only environment-variable names pass, with code invalid otherwise.
		err := custos.ValidateName(tc.in)
		if got := err == nil; got != tc.ok {
			t.Errorf("ValidateName(%q) ok=%v, want %v", tc.in, got, tc.ok)
		}
		if err != nil && custos.ErrorCode(err) != custos.EINVALID {
			t.Errorf("code=%q", custos.ErrorCode(err))
		}
	}
}

func TestValidateTag(t *testing.T) {
	for _, tc := range []struct {
		k, v string
		ok   bool
	}{
		{"env", "prod", true}, {"team.name", "a/b:c@d+e", true}, {"env", "", true},
		{"Env", "prod", false}, {"", "x", false}, {"env", "a b", false}, {"env", "a\nb", false},
		{"env", strings.Repeat("v", 129), false}, {strings.Repeat("k", 64), "v", false},
	} {
		// Ensure tag keys and values follow their patterns.
		if got := custos.ValidateTag(tc.k, tc.v) == nil; got != tc.ok {
			t.Errorf("ValidateTag(%q,%q) ok=%v, want %v", tc.k, tc.v, got, tc.ok)
		}
	}
	// Ensure more than MaxTags tags are refused.
	many := map[string]string{}
	for i := 0; i <= custos.MaxTags; i++ {
		many[strings.Repeat("k", i+1)] = "v"
	}
	if custos.ValidateTags(many) == nil {
		t.Fatal("too many tags accepted")
	}
}

func TestValidateID(t *testing.T) {
	// Ensure ids minted by NewID validate, and only with their own prefix.
	id := custos.NewID(custos.PrefixDevice)
	if err := custos.ValidateID(custos.PrefixDevice, id); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"", "dev_", "dev_123", "key_" + id[4:], "dev_ABCDEF0123456789", "dev_0123456789abcdef0", "d_0123456789abcdef"} {
		if custos.ValidateID(custos.PrefixDevice, bad) == nil {
			t.Errorf("ValidateID accepted %q", bad)
		}
	}
}

func TestNewTimeID(t *testing.T) {
	// Ensure time ids are prefix_ + 28 lowercase hex digits, sort by time
	// (to the millisecond), differ at the same time, and start at 0
	// before 1970.
	form := regexp.MustCompile(`^use_[0-9a-f]{28}$`)
	base := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	prev := ""
	for i := range 1000 {
		at := base.Add(time.Duration(i) * time.Millisecond)
		id := custos.NewTimeID(custos.PrefixUsage, at)
		if !form.MatchString(id) {
			t.Fatalf("NewTimeID = %q", id)
		}
		if ms, err := strconv.ParseInt(id[4:16], 16, 64); err != nil || ms != at.UnixMilli() {
			t.Fatalf("time part of %q = %d, %v; want %d", id, ms, err, at.UnixMilli())
		}
		if id <= prev {
			t.Fatalf("%q after %q does not sort after it", id, prev)
		}
		prev = id
	}
	if a, b := custos.NewTimeID("use", base), custos.NewTimeID("use", base); a == b {
		t.Fatalf("two ids at the same time are equal: %q", a)
	}
	for _, at := range []time.Time{{}, time.Unix(-5, 0)} {
		if id := custos.NewTimeID("use", at); id[4:16] != "000000000000" {
			t.Errorf("NewTimeID(%v) = %q", at, id)
		}
	}
}

func TestParseDuration(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"30m", 30 * time.Minute, true}, {"72h", 72 * time.Hour, true}, {"7d", 7 * 24 * time.Hour, true}, {"", 0, true},
		{"-1h", 0, false}, {"soon", 0, false}, {"1.5d", 0, false}, {"99999d", 0, false}, {"d", 0, false},
	} {
		// Ensure Go durations and whole days parse, negatives and junk do not.
		got, err := custos.ParseDuration(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseDuration(%q)=%v,%v; want %v ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func TestErrorMessage(t *testing.T) {
	// Ensure internal errors are shielded and custos errors pass through.
	if got, want := custos.ErrorMessage(errString("db password is hunter2")), "Internal error."; got != want {
		t.Fatalf("got %q", got)
	}
	if got, want := custos.ErrorCode(errString("x")), custos.EINTERNAL; got != want {
		t.Fatalf("got %q", got)
	}
	if got, want := custos.ErrorMessage(custos.Errorf(custos.ENOTFOUND, "secret %q not found", "A")), `secret "A" not found`; got != want {
		t.Fatalf("got %q", got)
	}
}

type errString string

func (e errString) Error() string { return string(e) }

func chain(n int) []*custos.AuditEvent {
	prev := custos.GenesisHash
	var evs []*custos.AuditEvent
	for i := 1; i <= n; i++ {
		e := &custos.AuditEvent{OrgID: "org_0000000000000001", Time: time.Unix(int64(i), 0).UTC(), Action: custos.ActionSecretReveal, Outcome: custos.OutcomeOK, Secret: "A"}
		e.Seal(int64(i), prev)
		prev = e.Hash
		evs = append(evs, e)
	}
	return evs
}

func TestVerifyChain(t *testing.T) {
	// Ensure an intact chain verifies, also page by page.
	t.Run("OK", func(t *testing.T) {
		evs := chain(10)
		if v := custos.VerifyChain(nil, evs); !v.OK || v.Events != 10 {
			t.Fatalf("%+v", v)
		}
		v := custos.VerifyChain(nil, evs[:4])
		if v = custos.VerifyChain(v, evs[4:]); !v.OK || v.Events != 10 || v.LastHash != evs[9].Hash {
			t.Fatalf("paged: %+v", v)
		}
	})
	// Ensure edits, deletions, reordering and relinking are found at the first bad event.
	for _, tc := range []struct {
		name   string
		mangle func([]*custos.AuditEvent) []*custos.AuditEvent
		at     int64
	}{
		{"ErrEdited", func(e []*custos.AuditEvent) []*custos.AuditEvent { e[3].IP = "10.0.0.1"; return e }, 4},
		{"ErrDeleted", func(e []*custos.AuditEvent) []*custos.AuditEvent { return append(e[:2], e[3:]...) }, 4},
		{"ErrSwapped", func(e []*custos.AuditEvent) []*custos.AuditEvent { e[4], e[5] = e[5], e[4]; return e }, 6},
		{"ErrRelinked", func(e []*custos.AuditEvent) []*custos.AuditEvent {
			e[6].PrevHash = custos.GenesisHash
			e[6].Hash = e[6].ComputeHash()
			return e
		}, 7},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := custos.VerifyChain(nil, tc.mangle(chain(10)))
			if v.OK || v.BrokenAt != tc.at {
				t.Fatalf("%+v, want broken at %d", v, tc.at)
			}
		})
	}
}

func FuzzValidateName(f *testing.F) {
	for _, s := range []string{"DB_PASSWORD", "", "1A", "A-B", "Ä", "A\x00B"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		err := custos.ValidateName(s)
		if err == nil {
			// Anything accepted is a portable environment variable name.
			if len(s) == 0 || len(s) > 128 || strings.ContainsAny(s, "=\x00 -./:") || !utf8.ValidString(s) || (s[0] >= '0' && s[0] <= '9') {
				t.Fatalf("accepted %q", s)
			}
		} else if len(custos.ErrorMessage(err)) > 300 {
			t.Fatalf("error message grows with input: %d bytes", len(custos.ErrorMessage(err)))
		}
	})
}

func FuzzValidateTag(f *testing.F) {
	f.Add("env", "prod")
	f.Add("Env", "a b")
	f.Add("", "\n")
	f.Fuzz(func(t *testing.T, k, v string) {
		err := custos.ValidateTag(k, v)
		if err == nil && (k == "" || strings.ContainsAny(k+v, " =\n\r\t\x00\"'`;,") || len(k) > 63 || len(v) > 128) {
			t.Fatalf("accepted %q=%q", k, v)
		}
		if err != nil && len(custos.ErrorMessage(err)) > 300 {
			t.Fatalf("error message grows with input")
		}
	})
}
