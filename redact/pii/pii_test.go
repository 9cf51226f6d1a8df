package pii_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/custos-dev/custos/redact"
	"github.com/custos-dev/custos/redact/pii"
)

// detect runs the detectors for cfg over s and returns the matched texts as
// "KIND:text" in emission order, checking bounds on the way.
func detect(tb testing.TB, cfg pii.Config, s string) []string {
	tb.Helper()
	var got []string
	for _, d := range pii.Detectors(cfg) {
		d.Detect([]byte(s), func(f redact.Finding) {
			if f.Start < 0 || f.End > len(s) || f.Start >= f.End {
				tb.Fatalf("finding %+v out of bounds for %d bytes", f, len(s))
			}
			got = append(got, string(f.Kind)+":"+s[f.Start:f.End])
		})
	}
	return got
}

// only returns a Config with just the kind k enabled.
func only(k redact.Kind) pii.Config {
	cfg := pii.Config{PhoneRegion: "US"}
	switch k {
	case redact.KindEmail:
		cfg.Email = true
	case redact.KindPhone:
		cfg.Phone = true
	case redact.KindCard:
		cfg.Card = true
	case redact.KindIBAN:
		cfg.IBAN = true
	case redact.KindSSN:
		cfg.SSN = true
	case redact.KindIP:
		cfg.IP = true
	}
	return cfg
}

type tcase struct {
	name string
	in   string
	want []string // matched substrings, in order; nil for none
}

func runCases(t *testing.T, kind redact.Kind, cfg pii.Config, cases []tcase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var want []string
			for _, w := range tc.want {
				want = append(want, string(kind)+":"+w)
			}
			got := detect(t, cfg, tc.in)
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("Detect(%q) = %q, want %q", tc.in, got, want)
			}
		})
	}
}

// Ensure emails are found with exact offsets, and non-emails are not.
func TestEmail(t *testing.T) {
	runCases(t, redact.KindEmail, only(redact.KindEmail), []tcase{
		{"Plain", "contact bob@example.com today", []string{"bob@example.com"}},
		{"Dotted", "mail bob.smith+tag@mail.example.co.uk.", []string{"bob.smith+tag@mail.example.co.uk"}},
		{"Two", "a@b.io, c_d@e-f.org", []string{"a@b.io", "c_d@e-f.org"}},
		{"Angle", "From: Bob <bob@example.com>", []string{"bob@example.com"}},
		{"Mailto", "mailto:alice@example.org?subject=x", []string{"alice@example.org"}},
		{"Punycode", "x@example.xn--p1ai", []string{"x@example.xn--p1ai"}},
		{"SSHUser", "alice@build.example.com:/srv", []string{"alice@build.example.com"}},
		{"GitRemote", "git@github.com:org/repo.git", nil},
		{"GitSSHURL", "ssh://git@gitlab.com/org/repo", nil},
		{"Localhost", "user@localhost", nil},
		{"NoTLD", "root@server", nil},
		{"NumericTLD", "lodash@4.17.21 and module@v1.2.3", nil},
		{"Asset", "icon@2x.png", nil},
		{"Decorator", "@Override public void run()", nil},
		{"Scoped", "npm i @types/node", nil},
		{"OneLetterTLD", "x = a@b.T", nil},
		{"LeadingDot", ".bob@example.com", []string{"bob@example.com"}},
		{"TrailingDotLocal", "bob.@example.com", nil},
		{"DoubleDot", "bo..b@example.com", nil},
		{"HyphenLabel", "bob@-example.com", nil},
		{"GluedUnicode", "ébob@example.com", nil},
		{"GluedUnderscore", "bob@example.com_x", nil},
		{"TooLongLocal", strings.Repeat("a", 65) + "@example.com", nil},
		{"DoubleAt", "a@b@example.com", []string{"b@example.com"}},
	})
}

// Ensure phone numbers are validated by libphonenumber and look-alikes are
// not reported.
func TestPhone(t *testing.T) {
	runCases(t, redact.KindPhone, only(redact.KindPhone), []tcase{
		{"Parens", "call (415) 555-2671 now", []string{"(415) 555-2671"}},
		{"Dashes", "phone 415-555-2671", []string{"415-555-2671"}},
		{"Dots", "415.555.2671", []string{"415.555.2671"}},
		{"Spaces", "415 555 2671", []string{"415 555 2671"}},
		{"Trunk", "1-800-275-2273", []string{"1-800-275-2273"}},
		{"E164", "reach me at +14155552671.", []string{"+14155552671"}},
		{"UK", "+44 20 7946 0958", []string{"+44 20 7946 0958"}},
		{"France", "+33 1 42 68 53 00", []string{"+33 1 42 68 53 00"}},
		{"Germany", "+49 30 901820", []string{"+49 30 901820"}},
		{"InParens", "(415-555-2671)", []string{"415-555-2671"}},
		{"TrailingParen", "(call 415-555-2671)", []string{"415-555-2671"}},
		{"BeforeLongNumber", "415-555-2671 4111111111111111", []string{"415-555-2671"}},
		{"PlusParens", "+1 (415) 555-2671", []string{"+1 (415) 555-2671"}},
		{"BareWithContext", "Tel: 4155552671", []string{"4155552671"}},
		{"GluedInFront", "room 12 415 555 2671", []string{"415 555 2671"}},
		{"GluedBehind", "415 555 2671 23", []string{"415 555 2671"}},
		{"Two", "415-555-2671 or 212-555-0187", []string{"415-555-2671", "212-555-0187"}},
		{"BareID", "order 4155552671 shipped", nil},
		{"Timestamp", "ts=1700000000 ms=1700000000123", nil},
		{"Version", "go 1.22.3 and v10.15.7", nil},
		{"IPv4", "192.168.100.200 and 10.0.0.1", nil},
		{"Date", "2024-01-15 and 15.01.2024", nil},
		{"DateTime", "2024-01-15 10:30:00", nil},
		{"UUID", "123e4567-e89b-12d3-a456-426614174000", nil},
		{"Hex", "commit 4155552671abcdef0123", nil},
		{"InWord", "abc415-555-2671", nil},
		{"List", "1 2 3 4 5 6 7 8 9", nil},
		{"InvalidArea", "123-456-7890", nil},
		{"NationalOtherRegion", "020 7946 0958", nil},
		{"Card", "4111 1111 1111 1111", nil},
		{"SSN", "123-45-6789", nil},
		{"Decimal", "pi=3.14159265358979", nil},
	})
}

// Ensure PhoneRegion changes how national numbers are read.
func TestPhoneRegion(t *testing.T) {
	cfg := only(redact.KindPhone)
	cfg.PhoneRegion = "gb"
	if got, want := fmt.Sprint(detect(t, cfg, "ring 020 7946 0958")), "[PHONE:020 7946 0958]"; got != want {
		t.Fatalf("GB: got %s, want %s", got, want)
	}
	cfg.PhoneRegion = ""
	if got, want := fmt.Sprint(detect(t, cfg, "415-555-2671")), "[PHONE:415-555-2671]"; got != want {
		t.Fatalf("default region: got %s, want %s", got, want)
	}
	cfg.PhoneRegion = "ZZ"
	if got, want := fmt.Sprint(detect(t, cfg, "415-555-2671 +14155552671")), "[PHONE:+14155552671]"; got != want {
		t.Fatalf("unknown region: got %s, want %s", got, want)
	}
}

// Ensure card numbers need a network prefix, a network length, a card
// grouping and a valid Luhn checksum.
func TestCard(t *testing.T) {
	runCases(t, redact.KindCard, only(redact.KindCard), []tcase{
		{"Visa", "card 4111111111111111 exp", []string{"4111111111111111"}},
		{"VisaSpaces", "4111 1111 1111 1111", []string{"4111 1111 1111 1111"}},
		{"VisaDashes", "4111-1111-1111-1111.", []string{"4111-1111-1111-1111"}},
		{"Mastercard", "5555555555554444", []string{"5555555555554444"}},
		{"Mastercard2", "2223003122003222", []string{"2223003122003222"}},
		{"Amex", "3782 822463 10005", []string{"3782 822463 10005"}},
		{"Discover", "6011111111111117", []string{"6011111111111117"}},
		{"Diners", "3056 9309 0259 04", []string{"3056 9309 0259 04"}},
		{"JCB", "3530111333300000", []string{"3530111333300000"}},
		{"GluedQty", "qty 2 4111 1111 1111 1111", []string{"4111 1111 1111 1111"}},
		{"LuhnInvalid", "4111111111111112", nil},
		{"UnknownIIN", "9111111111111119", nil},
		{"WrongLength", "41111111111111111", nil},
		{"MixedSeparators", "4111 1111-1111 1111", nil},
		{"BadGrouping", "41 1111111 1111111", nil},
		{"TooLong", "41111111111111111111111", nil},
		{"InHex", "a4111111111111111", nil},
		{"OrderNumber", "order 1234567890123456", nil},
		{"Decimal", "0.4111111111111111", nil},
	})
}

// Ensure IBANs need the country's length and a valid mod-97 checksum.
func TestIBAN(t *testing.T) {
	runCases(t, redact.KindIBAN, only(redact.KindIBAN), []tcase{
		{"DE", "IBAN DE89370400440532013000.", []string{"DE89370400440532013000"}},
		{"DESpaced", "DE89 3704 0044 0532 0130 00", []string{"DE89 3704 0044 0532 0130 00"}},
		{"GB", "GB82WEST12345698765432", []string{"GB82WEST12345698765432"}},
		{"GBSpaced", "to GB82 WEST 1234 5698 7654 32, thanks", []string{"GB82 WEST 1234 5698 7654 32"}},
		{"NO", "NO9386011117947", []string{"NO9386011117947"}},
		{"FR", "FR1420041010050500013M02606", []string{"FR1420041010050500013M02606"}},
		{"BadChecksum", "DE88370400440532013000", nil},
		{"WrongLength", "DE8937040044053201300", nil},
		{"TooLong", "DE893704004405320130001", nil},
		{"UnknownCountry", "ZZ89370400440532013000", nil},
		{"Lowercase", "de89370400440532013000", nil},
		{"InWord", "xDE89370400440532013000", nil},
		{"BadGroups", "DE89 37040044 0532 0130 00", nil},
	})
}

// Ensure SSNs need separators and a valid area, group and serial.
func TestSSN(t *testing.T) {
	runCases(t, redact.KindSSN, only(redact.KindSSN), []tcase{
		{"Dashes", "SSN: 536-22-1234.", []string{"536-22-1234"}},
		{"Spaces", "ssn 536 22 1234", []string{"536 22 1234"}},
		{"Two", "536-22-1234, 412-55-0001", []string{"536-22-1234", "412-55-0001"}},
		{"Slashed", "536-22-1234/412-55-0001", nil},
		{"Bare", "536221234", nil},
		{"Area000", "000-12-3456", nil},
		{"Area666", "666-12-3456", nil},
		{"Area900", "900-12-3456 and 999-12-3456", nil},
		{"Group00", "536-00-1234", nil},
		{"Serial0000", "536-22-0000", nil},
		{"MixedSeparators", "536-22 1234", nil},
		{"LongerDashed", "1-536-22-1234 and 536-22-1234-5", nil},
		{"InWord", "x536-22-1234", nil},
		{"SpacedList", "7 536 22 1234", nil},
		{"Phone", "415-555-2671", nil},
	})
}

// Ensure only public IP addresses are reported by default.
func TestIP(t *testing.T) {
	runCases(t, redact.KindIP, only(redact.KindIP), []tcase{
		{"V4", "server 8.8.8.8 answered", []string{"8.8.8.8"}},
		{"V4Port", "dial 1.1.1.1:53", []string{"1.1.1.1"}},
		{"V4Sentence", "it was 93.184.216.34.", []string{"93.184.216.34"}},
		{"V4URL", "http://93.184.216.34/path", []string{"93.184.216.34"}},
		{"V4CIDR", "allow 8.8.4.0/24", []string{"8.8.4.0"}},
		{"V4Label", "ip:8.8.8.8", []string{"8.8.8.8"}},
		{"V6", "2606:4700:4700::1111", []string{"2606:4700:4700::1111"}},
		{"V6Brackets", "[2a00:1450:4001:82a::200e]:443", []string{"2a00:1450:4001:82a::200e"}},
		{"V6Full", "2001:4860:4860:0000:0000:0000:0000:8888", []string{"2001:4860:4860:0000:0000:0000:0000:8888"}},
		{"V6Mapped", "::ffff:8.8.4.4", []string{"::ffff:8.8.4.4"}},
		{"V6Label", "addr:2606:4700::1", []string{"2606:4700::1"}},
		{"Private", "10.0.0.1 172.16.5.4 192.168.1.1 fd00::1", nil},
		{"Loopback", "127.0.0.1 ::1 localhost", nil},
		{"LinkLocal", "169.254.1.1 fe80::1%eth0", nil},
		{"Unspecified", "0.0.0.0 ::", nil},
		{"Documentation", "192.0.2.1 198.51.100.7 203.0.113.9 2001:db8::1", nil},
		{"CGNAT", "100.64.0.1", nil},
		{"Multicast", "224.0.0.251 ff02::fb", nil},
		{"MappedPrivate", "::ffff:10.0.0.1", nil},
		{"Version", "1.2.3.4.5 and 2.1.0", nil},
		{"VersionPrefix", "v1.2.3.4", nil},
		{"UserAgent", "Chrome/120.0.0.0 Safari/537.36", nil},
		{"Octet", "256.1.1.1", nil},
		{"LeadingZero", "08.08.08.08", nil},
		{"DottedName", "host.8.8.8.8", nil},
		{"Cpp", "std::vector<int> a; Foo::bar(); ::new; a::b; dead::beef", nil},
		{"Time", "12:34:56 and 12:34:56.789", nil},
		{"MAC", "00:1a:2b:3c:4d:5e", nil},
		{"Hash", "sha1 e83c5163316f89bfbde7d9ab23ca2e25604af290", nil},
	})
}

// Ensure PrivateIPs also reports private and special ranges.
func TestIPPrivate(t *testing.T) {
	cfg := only(redact.KindIP)
	cfg.PrivateIPs = true
	runCases(t, redact.KindIP, cfg, []tcase{
		{"V4", "10.0.0.1 192.168.1.1 127.0.0.1", []string{"10.0.0.1", "192.168.1.1", "127.0.0.1"}},
		{"V6", "fe80::1 ::1", []string{"fe80::1", "::1"}},
		{"Documentation", "192.0.2.1 2001:db8::1", []string{"192.0.2.1", "2001:db8::1"}},
		{"StillNotVersion", "1.2.3.4.5", nil},
	})
}

// Ensure each kind can be switched off on its own.
func TestConfig(t *testing.T) {
	const in = "bob@example.com 415-555-2671 4111111111111111 DE89370400440532013000 536-22-1234 8.8.8.8"
	all := map[redact.Kind]string{
		redact.KindEmail: "bob@example.com",
		redact.KindPhone: "415-555-2671",
		redact.KindCard:  "4111111111111111",
		redact.KindIBAN:  "DE89370400440532013000",
		redact.KindSSN:   "536-22-1234",
		redact.KindIP:    "8.8.8.8",
	}
	t.Run("Default", func(t *testing.T) {
		got := detect(t, pii.DefaultConfig(), in)
		if len(got) != len(all) {
			t.Fatalf("got %q, want one finding per kind", got)
		}
		for k, v := range all {
			if !contains(got, string(k)+":"+v) {
				t.Fatalf("got %q, missing %s:%s", got, k, v)
			}
		}
	})
	t.Run("None", func(t *testing.T) {
		if got := pii.Detectors(pii.Config{}); len(got) != 0 {
			t.Fatalf("Detectors(Config{}) = %d detectors, want 0", len(got))
		}
	})
	for k, v := range all {
		t.Run("Only"+string(k), func(t *testing.T) {
			if got, want := fmt.Sprint(detect(t, only(k), in)), fmt.Sprint([]string{string(k) + ":" + v}); got != want {
				t.Fatalf("got %s, want %s", got, want)
			}
		})
		t.Run("Without"+string(k), func(t *testing.T) {
			cfg := pii.DefaultConfig()
			switch k {
			case redact.KindEmail:
				cfg.Email = false
			case redact.KindPhone:
				cfg.Phone = false
			case redact.KindCard:
				cfg.Card = false
			case redact.KindIBAN:
				cfg.IBAN = false
			case redact.KindSSN:
				cfg.SSN = false
			case redact.KindIP:
				cfg.IP = false
			}
			got := detect(t, cfg, in)
			if len(got) != len(all)-1 || contains(got, string(k)+":"+v) {
				t.Fatalf("got %q, want all kinds but %s", got, k)
			}
		})
	}
}

// Ensure findings carry the right rule IDs, exact offsets, and that
// detectors do not change the input.
func TestFindingFields(t *testing.T) {
	src := []byte("x bob@example.com y 8.8.8.8")
	orig := string(src)
	var fs []redact.Finding
	for _, d := range pii.Detectors(pii.DefaultConfig()) {
		d.Detect(src, func(f redact.Finding) { fs = append(fs, f) })
	}
	want := []redact.Finding{
		{Kind: redact.KindEmail, RuleID: pii.RuleEmail, Start: 2, End: 17},
		{Kind: redact.KindIP, RuleID: pii.RuleIP, Start: 20, End: 27},
	}
	if got, want := fmt.Sprint(fs), fmt.Sprint(want); got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
	if string(src) != orig {
		t.Fatalf("input changed: %q", src)
	}
}

// Ensure the detectors can be shared between goroutines.
func TestConcurrent(t *testing.T) {
	ds := pii.Detectors(pii.DefaultConfig())
	src := benchInput()
	var want int
	for _, d := range ds {
		d.Detect(src, func(redact.Finding) { want++ })
	}
	done := make(chan int)
	for range 8 {
		go func() {
			n := 0
			for _, d := range ds {
				d.Detect(src, func(redact.Finding) { n++ })
			}
			done <- n
		}()
	}
	for range 8 {
		if got := <-done; got != want {
			t.Fatalf("concurrent run found %d, want %d", got, want)
		}
	}
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// FuzzDetectors checks that no input makes a detector panic or report a
// finding outside the input.
func FuzzDetectors(f *testing.F) {
	for _, s := range []string{
		"bob@example.com", "+1 (415) 555-2671", "4111 1111 1111 1111",
		"DE89 3704 0044 0532 0130 00", "536-22-1234", "8.8.8.8:53",
		"::ffff:8.8.4.4", "2606:4700:4700::1111", "a@b@c.d", "(((+1", "1.2.3.4.5",
		"GB82 WEST 1234 5698 7654", "tel 12345678901234567890",
	} {
		f.Add([]byte(s))
	}
	cfg := pii.DefaultConfig()
	cfg.PrivateIPs = true
	ds := pii.Detectors(cfg)
	f.Fuzz(func(t *testing.T, src []byte) {
		orig := string(src)
		last := map[redact.Kind]int{}
		for _, d := range ds {
			d.Detect(src, func(fd redact.Finding) {
				if fd.Start < 0 || fd.End > len(src) || fd.Start >= fd.End {
					t.Fatalf("finding %+v out of bounds for %d bytes", fd, len(src))
				}
				if fd.Start < last[fd.Kind] {
					t.Fatalf("finding %+v overlaps or precedes the previous %s finding", fd, fd.Kind)
				}
				last[fd.Kind] = fd.End
			})
		}
		if string(src) != orig {
			t.Fatalf("input changed")
		}
	})
}

func TestFieldBoundaries(t *testing.T) {
	// Ensure numbers in CSV fields stand on their own (a comma is a thousands
	// separator only before exactly three digits), and a number that is the
	// tail of an identifier (ORD-2024-837723) is not personal data.
	row := "1002,James,617.639.8540,US,6011111111111117,427-36-1942,3782 822463 10005,1,234"
	runCases(t, redact.KindCard, only(redact.KindCard), []tcase{
		{"CSVBare", row, []string{"6011111111111117", "3782 822463 10005"}},
		{"Thousands", "total 4,111,111,111,111,111 units", nil},
	})
	runCases(t, redact.KindSSN, only(redact.KindSSN), []tcase{
		{"CSV", row, []string{"427-36-1942"}},
	})
	runCases(t, redact.KindPhone, only(redact.KindPhone), []tcase{
		{"OrderID", "charged twice for order ORD-2024-837723 today", nil},
		{"TicketUnderscore", "see INV_415-555-2671", nil},
	})
}
