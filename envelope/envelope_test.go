package envelope_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/custos-dev/custos/envelope"
)

// MustInlineKeeper returns a base64key:// keeper with a fresh random key and
// its URL.
func MustInlineKeeper(tb testing.TB) (envelope.Keeper, string) {
	tb.Helper()
	key := make([]byte, 32)
	rand.Read(key)
	u := "base64key://" + base64.URLEncoding.EncodeToString(key)
	return MustOpenKeeper(tb, u), u
}

// MustOpenKeeper opens url and closes the keeper when the test ends.
func MustOpenKeeper(tb testing.TB, url string) envelope.Keeper {
	tb.Helper()
	k, err := envelope.OpenKeeper(context.Background(), url, envelope.OpenOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { k.Close() })
	return k
}

// MustSeal seals plaintext with k under aad.
func MustSeal(tb testing.TB, k envelope.Keeper, plaintext, aad []byte) *envelope.Sealed {
	tb.Helper()
	s, err := envelope.Seal(context.Background(), k, plaintext, aad)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// clone returns a deep copy of s.
func clone(s *envelope.Sealed) *envelope.Sealed {
	return &envelope.Sealed{
		Ciphertext: bytes.Clone(s.Ciphertext),
		WrappedDEK: bytes.Clone(s.WrappedDEK),
		KeeperID:   s.KeeperID,
	}
}

// mustFailDecrypt fails the test unless err wraps ErrDecrypt.
func mustFailDecrypt(tb testing.TB, err error) {
	tb.Helper()
	if !errors.Is(err, envelope.ErrDecrypt) {
		tb.Fatalf("err=%v, want ErrDecrypt", err)
	}
}

func TestSealOpen(t *testing.T) {
	ctx := context.Background()
	aad := envelope.SecretAAD("org_0123456789abcdef", "sec_0123456789abcdef", 1)

	// Ensure a sealed value opens to the same plaintext, for several sizes.
	t.Run("OK", func(t *testing.T) {
		k, _ := MustInlineKeeper(t)
		for _, n := range []int{0, 1, 31, 32, 1000, 64 << 10} {
			pt := make([]byte, n)
			rand.Read(pt)
			s := MustSeal(t, k, pt, aad)
			if got, want := s.KeeperID, k.ID(); got != want {
				t.Fatalf("KeeperID=%q, want %q", got, want)
			}
			if got, want := len(s.Ciphertext), 1+12+n+16; got != want {
				t.Fatalf("len(Ciphertext)=%d, want %d", got, want)
			}
			// A short plaintext occurs in random bytes by chance (one byte
			// in 29 does, one time in nine): look for 8 bytes or more.
			if n >= 8 && bytes.Contains(s.Ciphertext, pt) {
				t.Fatal("ciphertext contains the plaintext")
			}
			got, err := envelope.Open(ctx, k, s, aad)
			if err != nil {
				t.Fatal(err)
			} else if !bytes.Equal(got, pt) {
				t.Fatalf("size %d: plaintext mismatch", n)
			}
		}
	})

	// Ensure every seal uses a fresh DEK and nonce.
	t.Run("FreshDEK", func(t *testing.T) {
		k, _ := MustInlineKeeper(t)
		a, b := MustSeal(t, k, []byte("same"), aad), MustSeal(t, k, []byte("same"), aad)
		if bytes.Equal(a.Ciphertext, b.Ciphertext) || bytes.Equal(a.WrappedDEK, b.WrappedDEK) {
			t.Fatal("two seals of the same value are equal")
		}
		// Swapping the wrapped DEKs of two values makes both fail.
		a.WrappedDEK, b.WrappedDEK = b.WrappedDEK, a.WrappedDEK
		_, err := envelope.Open(ctx, k, a, aad)
		mustFailDecrypt(t, err)
	})

	// Ensure flipping any bit of the ciphertext (format byte, nonce, body,
	// tag) makes Open fail.
	t.Run("ErrTamperedCiphertext", func(t *testing.T) {
		k, _ := MustInlineKeeper(t)
		s := MustSeal(t, k, []byte("0123456789abcdef0123456789abcdef"), aad)
		regions := map[string][2]int{
			"format": {0, 1},
			"nonce":  {1, 13},
			"body":   {13, len(s.Ciphertext) - 16},
			"tag":    {len(s.Ciphertext) - 16, len(s.Ciphertext)},
		}
		for name, r := range regions {
			for i := r[0]; i < r[1]; i++ {
				for _, bit := range []byte{0x01, 0x80} {
					c := clone(s)
					c.Ciphertext[i] ^= bit
					if _, err := envelope.Open(ctx, k, c, aad); !errors.Is(err, envelope.ErrDecrypt) {
						t.Fatalf("%s: byte %d bit %#x: err=%v, want ErrDecrypt", name, i, bit, err)
					}
				}
			}
		}
	})

	// Ensure truncated, extended and empty ciphertexts fail.
	t.Run("ErrCiphertextLength", func(t *testing.T) {
		k, _ := MustInlineKeeper(t)
		s := MustSeal(t, k, []byte("value"), aad)
		for _, ct := range [][]byte{nil, {}, s.Ciphertext[:1], s.Ciphertext[:28], s.Ciphertext[:len(s.Ciphertext)-1], append(bytes.Clone(s.Ciphertext), 0)} {
			c := clone(s)
			c.Ciphertext = ct
			_, err := envelope.Open(ctx, k, c, aad)
			mustFailDecrypt(t, err)
		}
		_, err := envelope.Open(ctx, k, nil, aad)
		mustFailDecrypt(t, err)
	})

	// Ensure flipping any byte of the wrapped DEK, or cutting it, fails.
	t.Run("ErrTamperedWrappedDEK", func(t *testing.T) {
		k, _ := MustInlineKeeper(t)
		s := MustSeal(t, k, []byte("value"), aad)
		for i := range s.WrappedDEK {
			c := clone(s)
			c.WrappedDEK[i] ^= 0x01
			if _, err := envelope.Open(ctx, k, c, aad); !errors.Is(err, envelope.ErrDecrypt) {
				t.Fatalf("byte %d: err=%v, want ErrDecrypt", i, err)
			}
		}
		for _, w := range [][]byte{nil, s.WrappedDEK[:10], s.WrappedDEK[:len(s.WrappedDEK)-1]} {
			c := clone(s)
			c.WrappedDEK = w
			_, err := envelope.Open(ctx, k, c, aad)
			mustFailDecrypt(t, err)
		}
	})

	// Ensure a ciphertext moved to another row (org, secret or version) fails.
	t.Run("ErrSwappedAAD", func(t *testing.T) {
		k, _ := MustInlineKeeper(t)
		s := MustSeal(t, k, []byte("value"), aad)
		for _, other := range [][]byte{
			envelope.SecretAAD("org_0123456789abcdef", "sec_0123456789abcdee", 1),
			envelope.SecretAAD("org_0123456789abcdef", "sec_0123456789abcdef", 2),
			envelope.SecretAAD("org_0123456789abcdee", "sec_0123456789abcdef", 1),
			nil,
		} {
			_, err := envelope.Open(ctx, k, s, other)
			mustFailDecrypt(t, err)
		}
	})

	// Ensure a value sealed under one KEK does not open with another, even
	// if the stored keeper id is forged to match.
	t.Run("ErrWrongKEK", func(t *testing.T) {
		k1, _ := MustInlineKeeper(t)
		k2, _ := MustInlineKeeper(t)
		s := MustSeal(t, k1, []byte("value"), aad)
		_, err := envelope.Open(ctx, k2, s, aad)
		mustFailDecrypt(t, err)
		if !strings.Contains(err.Error(), k1.ID()) || !strings.Contains(err.Error(), k2.ID()) {
			t.Fatalf("error should name both keepers: %v", err)
		}
		c := clone(s)
		c.KeeperID = k2.ID()
		_, err = envelope.Open(ctx, k2, c, aad)
		mustFailDecrypt(t, err)
	})

	// Ensure many goroutines can seal and open with one keeper.
	t.Run("Concurrent", func(t *testing.T) {
		k, _ := MustInlineKeeper(t)
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				for range 50 {
					s, err := envelope.Seal(ctx, k, []byte("value"), aad)
					if err != nil {
						t.Error(err)
						return
					}
					if _, err := envelope.Open(ctx, k, s, aad); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
	})
}

func TestSecretAAD(t *testing.T) {
	// Ensure the encoding is unambiguous across part boundaries and versions.
	t.Run("OK", func(t *testing.T) {
		seen := map[string]string{}
		for _, c := range []struct {
			org, sec string
			v        int
		}{
			{"ab", "c", 1}, {"a", "bc", 1}, {"abc", "", 1}, {"", "abc", 1},
			{"a", "b", 1}, {"a", "b", 2}, {"a", "b", 256}, {"a", "b", -1}, {"a", "b", 0},
		} {
			k := string(envelope.SecretAAD(c.org, c.sec, c.v))
			if prev, ok := seen[k]; ok {
				t.Fatalf("%v collides with %s", c, prev)
			}
			seen[k] = c.org + "|" + c.sec
		}
		if got, want := envelope.SecretAAD("a", "b", 1), envelope.SecretAAD("a", "b", 1); !bytes.Equal(got, want) {
			t.Fatal("SecretAAD is not deterministic")
		}
	})
}

func TestArtifactAAD(t *testing.T) {
	// Ensure the encoding is unambiguous across part boundaries and differs
	// from a secret's.
	t.Run("OK", func(t *testing.T) {
		seen := map[string]string{string(envelope.SecretAAD("a", "b", 1)): "secret"}
		for _, c := range [][4]string{
			{"ab", "c", "d", "e"}, {"a", "bc", "d", "e"}, {"a", "b", "cd", "e"}, {"a", "b", "c", "de"},
			{"", "abc", "d", "e"}, {"a", "b", "", "cde"}, {"a", "b", "c", "d/e"}, {"a", "b", "c/d", "e"},
		} {
			k := string(envelope.ArtifactAAD(c[0], c[1], c[2], c[3]))
			if prev, ok := seen[k]; ok {
				t.Fatalf("%v collides with %s", c, prev)
			}
			seen[k] = strings.Join(c[:], "|")
		}
		if got, want := envelope.ArtifactAAD("a", "b", "c", "d"), envelope.ArtifactAAD("a", "b", "c", "d"); !bytes.Equal(got, want) {
			t.Fatal("ArtifactAAD is not deterministic")
		}
	})
}

func TestRewrap(t *testing.T) {
	ctx := context.Background()
	aad := envelope.SecretAAD("org_0123456789abcdef", "sec_0123456789abcdef", 3)

	// Ensure a rewrapped DEK opens the untouched ciphertext with the new
	// keeper and no longer with the old one.
	t.Run("OK", func(t *testing.T) {
		from, _ := MustInlineKeeper(t)
		to, _ := MustInlineKeeper(t)
		s := MustSeal(t, from, []byte("rotate me"), aad)
		ct := bytes.Clone(s.Ciphertext)
		w, err := envelope.Rewrap(ctx, from, to, s.WrappedDEK)
		if err != nil {
			t.Fatal(err)
		}
		moved := &envelope.Sealed{Ciphertext: s.Ciphertext, WrappedDEK: w, KeeperID: to.ID()}
		if got, err := envelope.Open(ctx, to, moved, aad); err != nil {
			t.Fatal(err)
		} else if string(got) != "rotate me" {
			t.Fatalf("got %q", got)
		}
		if !bytes.Equal(ct, s.Ciphertext) {
			t.Fatal("ciphertext changed")
		}
		_, err = envelope.Open(ctx, from, moved, aad)
		mustFailDecrypt(t, err)
		forged := &envelope.Sealed{Ciphertext: s.Ciphertext, WrappedDEK: w, KeeperID: from.ID()}
		_, err = envelope.Open(ctx, from, forged, aad)
		mustFailDecrypt(t, err)
	})

	// Ensure rewrapping with a keeper that did not wrap the DEK fails.
	t.Run("ErrWrongFrom", func(t *testing.T) {
		k1, _ := MustInlineKeeper(t)
		k2, _ := MustInlineKeeper(t)
		s := MustSeal(t, k1, []byte("x"), aad)
		_, err := envelope.Rewrap(ctx, k2, k1, s.WrappedDEK)
		mustFailDecrypt(t, err)
	})
}

func TestCanary(t *testing.T) {
	ctx := context.Background()

	// Ensure the keeper that made a canary passes it, also when reopened.
	t.Run("OK", func(t *testing.T) {
		k, u := MustInlineKeeper(t)
		blob, err := envelope.NewCanary(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		if err := envelope.CheckCanary(ctx, k, blob); err != nil {
			t.Fatal(err)
		}
		if err := envelope.CheckCanary(ctx, MustOpenKeeper(t, u), blob); err != nil {
			t.Fatal(err)
		}
	})

	// Ensure another KEK is told it is the wrong keeper, naming both ids.
	t.Run("ErrWrongKeeper", func(t *testing.T) {
		k1, _ := MustInlineKeeper(t)
		k2, _ := MustInlineKeeper(t)
		blob, err := envelope.NewCanary(ctx, k1)
		if err != nil {
			t.Fatal(err)
		}
		err = envelope.CheckCanary(ctx, k2, blob)
		mustFailDecrypt(t, err)
		want := "the KEK of keeper " + k2.ID() + " cannot open this database's canary (sealed by keeper " + k1.ID() + "): wrong --keeper?"
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("err=%v, want it to contain %q", err, want)
		}
	})

	// Ensure a canary whose keeper id was forged still fails.
	t.Run("ErrForgedKeeperID", func(t *testing.T) {
		k1, _ := MustInlineKeeper(t)
		k2, _ := MustInlineKeeper(t)
		blob, err := envelope.NewCanary(ctx, k1)
		if err != nil {
			t.Fatal(err)
		}
		forged := bytes.Replace(blob, []byte(k1.ID()), []byte(k2.ID()), 1)
		mustFailDecrypt(t, envelope.CheckCanary(ctx, k2, forged))
	})

	// Ensure a blob that is not a canary is reported as malformed.
	t.Run("ErrMalformed", func(t *testing.T) {
		k, _ := MustInlineKeeper(t)
		for _, blob := range []string{"", "null", "{}", `{"v":2,"keeper_id":"x"}`, "garbage"} {
			err := envelope.CheckCanary(ctx, k, []byte(blob))
			if err == nil || !strings.Contains(err.Error(), "malformed") {
				t.Fatalf("%q: err=%v", blob, err)
			}
		}
	})
}

// FuzzOpen ensures Open and CheckCanary never panic on arbitrary input, and
// that nothing but the real sealed value opens.
func FuzzOpen(f *testing.F) {
	ctx := context.Background()
	k := MustOpenKeeper(f, "base64key://"+base64.URLEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32)))
	aad := envelope.SecretAAD("org", "sec", 1)
	s := MustSeal(f, k, []byte("fuzz"), aad)
	canary, err := envelope.NewCanary(ctx, k)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(s.Ciphertext, s.WrappedDEK, true, aad)
	f.Add(s.Ciphertext[:20], s.WrappedDEK[:30], false, []byte{})
	f.Add(canary, []byte{}, true, []byte(nil))
	f.Fuzz(func(t *testing.T, ct, wrapped []byte, sameID bool, a []byte) {
		id := "other"
		if sameID {
			id = k.ID()
		}
		pt, err := envelope.Open(ctx, k, &envelope.Sealed{Ciphertext: ct, WrappedDEK: wrapped, KeeperID: id}, a)
		if err == nil {
			// Only a value really sealed by k opens: the seed (sealed in
			// this process or, when fuzzing, in the coordinator).
			if !sameID || !bytes.Equal(a, aad) || string(pt) != "fuzz" {
				t.Fatalf("forged value opened: %q", pt)
			}
		} else if !errors.Is(err, envelope.ErrDecrypt) {
			t.Fatalf("err=%v, want ErrDecrypt", err)
		}
		_ = envelope.CheckCanary(ctx, k, ct)
	})
}

func BenchmarkSeal(b *testing.B) {
	ctx := context.Background()
	k, _ := MustInlineKeeper(b)
	aad := envelope.SecretAAD("org_0123456789abcdef", "sec_0123456789abcdef", 1)
	for _, n := range []int{64, 4 << 10} {
		b.Run(size(n), func(b *testing.B) {
			pt := make([]byte, n)
			b.SetBytes(int64(n))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := envelope.Seal(ctx, k, pt, aad); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkOpen(b *testing.B) {
	ctx := context.Background()
	k, _ := MustInlineKeeper(b)
	aad := envelope.SecretAAD("org_0123456789abcdef", "sec_0123456789abcdef", 1)
	for _, n := range []int{64, 4 << 10} {
		b.Run(size(n), func(b *testing.B) {
			s := MustSeal(b, k, make([]byte, n), aad)
			b.SetBytes(int64(n))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := envelope.Open(ctx, k, s, aad); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// size names a benchmark by value size.
func size(n int) string {
	if n >= 1<<10 {
		return strconv.Itoa(n>>10) + "KiB"
	}
	return strconv.Itoa(n) + "B"
}
