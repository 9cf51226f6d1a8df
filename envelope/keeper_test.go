package envelope_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"gocloud.dev/secrets"
	"gocloud.dev/secrets/localsecrets"

	"github.com/custos-dev/custos/envelope"
)

// testScheme is a gocloud.dev/secrets scheme registered by this test, so the
// generic driver path is exercised without importing a cloud driver.
const testScheme = "custostest"

func init() {
	secrets.DefaultURLMux().RegisterKeeper(testScheme, testOpener{})
}

// testOpener opens custostest://HOST?… keepers with a fixed key; host "fail"
// fails with an error that quotes the whole URL, as careless drivers do.
type testOpener struct{}

func (testOpener) OpenKeeperURL(ctx context.Context, u *url.URL) (*secrets.Keeper, error) {
	if u.Host == "fail" {
		return nil, fmt.Errorf("cannot reach %s (token %s)", u.String(), u.Query().Get("token"))
	}
	var key [32]byte
	return localsecrets.NewKeeper(key), nil
}

// openKeeper opens url with opts.
func openKeeper(url string, opts envelope.OpenOptions) (envelope.Keeper, error) {
	return envelope.OpenKeeper(context.Background(), url, opts)
}

// mustNotContain fails if err's message contains any of secrets.
func mustNotContain(tb testing.TB, err error, secrets ...string) {
	tb.Helper()
	for _, s := range secrets {
		if strings.Contains(err.Error(), s) {
			tb.Fatalf("error leaks %q: %v", s, err)
		}
	}
}

func TestOpenKeeper_File(t *testing.T) {
	ctx := context.Background()

	// Ensure Create makes the key file 0600 in a new 0700 directory, that the
	// key is 32 random bytes in standard base64, and that reopening it (or
	// giving the same key inline) gives the same keeper.
	t.Run("OK", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "custos-data", "keys")
		path := filepath.Join(dir, "kek.key")
		k, err := openKeeper("file://"+path, envelope.OpenOptions{Create: true})
		if err != nil {
			t.Fatal(err)
		}
		defer k.Close()
		if !strings.HasPrefix(k.ID(), "local:") || len(k.ID()) != len("local:")+16 {
			t.Fatalf("ID=%q", k.ID())
		}
		if runtime.GOOS != "windows" {
			if fi, err := os.Stat(path); err != nil {
				t.Fatal(err)
			} else if got, want := fi.Mode().Perm(), fs.FileMode(0o600); got != want {
				t.Fatalf("key file mode=%v, want %v", got, want)
			}
			for _, d := range []string{dir, filepath.Dir(dir)} {
				if fi, err := os.Stat(d); err != nil {
					t.Fatal(err)
				} else if got, want := fi.Mode().Perm(), fs.FileMode(0o700); got != want {
					t.Fatalf("%s mode=%v, want %v", d, got, want)
				}
			}
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if b[len(b)-1] != '\n' {
			t.Fatal("key file should end in a newline")
		}
		key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(b)))
		if err != nil || len(key) != 32 {
			t.Fatalf("key file holds %d bytes, err=%v", len(key), err)
		}

		s := MustSeal(t, k, []byte("v"), nil)
		for _, u := range []string{
			"file://" + path,
			"base64key://" + base64.URLEncoding.EncodeToString(key),
			"base64key://" + base64.StdEncoding.EncodeToString(key),
			"base64key://" + base64.RawURLEncoding.EncodeToString(key),
		} {
			k2, err := openKeeper(u, envelope.OpenOptions{Create: true})
			if err != nil {
				t.Fatal(err)
			}
			if got, want := k2.ID(), k.ID(); got != want {
				t.Fatalf("%s: ID=%q, want %q", envelope.Redact(u), got, want)
			}
			if _, err := envelope.Open(ctx, k2, s, nil); err != nil {
				t.Fatal(err)
			}
			k2.Close()
		}
		if b2, _ := os.ReadFile(path); !bytes.Equal(b, b2) {
			t.Fatal("Create overwrote an existing key file")
		}
	})

	// Ensure a relative path is resolved against the working directory.
	t.Run("OKRelative", func(t *testing.T) {
		t.Chdir(t.TempDir())
		k, err := openKeeper("file://custos-data/kek.key", envelope.OpenOptions{Create: true})
		if err != nil {
			t.Fatal(err)
		}
		k.Close()
		if _, err := os.Stat(filepath.Join("custos-data", "kek.key")); err != nil {
			t.Fatal(err)
		}
	})

	// Ensure a key file without a trailing newline, or with CRLF, is accepted.
	t.Run("OKNoNewline", func(t *testing.T) {
		key := base64.StdEncoding.EncodeToString(make([]byte, 32))
		for i, content := range []string{key, key + "\r\n"} {
			path := filepath.Join(t.TempDir(), fmt.Sprint(i))
			if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			k, err := openKeeper("file://"+path, envelope.OpenOptions{})
			if err != nil {
				t.Fatal(err)
			}
			k.Close()
		}
	})

	// Ensure a key file readable or writable by group or others is refused
	// with a chmod hint.
	t.Run("ErrPermissive", func(t *testing.T) {
		if runtime.GOOS == "windows" {
			t.Skip("no POSIX modes")
		}
		key := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{9}, 32))
		for _, mode := range []fs.FileMode{0o644, 0o640, 0o604, 0o620} {
			path := filepath.Join(t.TempDir(), "kek.key")
			if err := os.WriteFile(path, []byte(key+"\n"), 0o600); err != nil {
				t.Fatal(err)
			} else if err := os.Chmod(path, mode); err != nil {
				t.Fatal(err)
			}
			_, err := openKeeper("file://"+path, envelope.OpenOptions{Create: true})
			if err == nil || !strings.Contains(err.Error(), "chmod 600 "+path) {
				t.Fatalf("mode %v: err=%v, want a chmod 600 hint", mode, err)
			}
			mustNotContain(t, err, key)
		}
	})

	// Ensure a missing key file without Create is a clear error.
	t.Run("ErrMissing", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "nope", "kek.key")
		_, err := openKeeper("file://"+path, envelope.OpenOptions{})
		if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), path) {
			t.Fatalf("err=%v, want not-exist naming %s", err, path)
		}
		if _, err := os.Stat(filepath.Dir(path)); !errors.Is(err, fs.ErrNotExist) {
			t.Fatal("open without Create created a directory")
		}
	})

	// Ensure malformed key files are refused without echoing their content.
	t.Run("ErrMalformed", func(t *testing.T) {
		for _, c := range []struct{ content, want string }{
			{"not base64 at all: hunter2-secret-material", "not valid"},
			{base64.StdEncoding.EncodeToString([]byte("short-key-material")), "decodes to 18 bytes, want 32"},
			{base64.StdEncoding.EncodeToString(bytes.Repeat([]byte("k"), 33)), "decodes to 33 bytes, want 32"},
			{base64.URLEncoding.EncodeToString(bytes.Repeat([]byte{0xfb}, 32)), "not valid"},
			{"", "decodes to 0 bytes"},
			{strings.Repeat("A", 5000), "too large"},
		} {
			path := filepath.Join(t.TempDir(), "kek.key")
			if err := os.WriteFile(path, []byte(c.content), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := openKeeper("file://"+path, envelope.OpenOptions{Create: true})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("%.20q: err=%v, want %q", c.content, err, c.want)
			}
			if c.content != "" {
				mustNotContain(t, err, c.content[:16])
			}
		}
	})

	// Ensure a directory is not taken for a key file, and an empty path is refused.
	t.Run("ErrNotRegular", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.Chmod(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if _, err := openKeeper("file://"+dir, envelope.OpenOptions{Create: true}); err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Fatalf("err=%v", err)
		}
		if _, err := openKeeper("file://", envelope.OpenOptions{Create: true}); err == nil || !strings.Contains(err.Error(), "needs a path") {
			t.Fatalf("err=%v", err)
		}
	})
}

func TestOpenKeeper_Inline(t *testing.T) {
	// Ensure malformed inline keys are refused without echoing them.
	t.Run("ErrMalformed", func(t *testing.T) {
		long := strings.Repeat("QUJD", 40)
		for _, c := range []struct{ key, want string }{
			{"", "decodes to 0 bytes"},
			{"not*base64*hunter2secret", "not valid base64"},
			{base64.URLEncoding.EncodeToString([]byte("sixteen byte key")), "decodes to 16 bytes, want 32"},
			{long, "too long"},
		} {
			_, err := openKeeper("base64key://"+c.key, envelope.OpenOptions{})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("%.20q: err=%v, want %q", c.key, err, c.want)
			}
			if c.key != "" {
				mustNotContain(t, err, c.key[:10])
			}
		}
	})
}

func TestOpenKeeper_Other(t *testing.T) {
	ctx := context.Background()

	// Ensure a scheme a gocloud driver registers opens through gocloud, with
	// an id derived from the redacted URL (credentials do not change it).
	t.Run("OK", func(t *testing.T) {
		k1 := MustOpenKeeper(t, testScheme+"://kms/key1?token=aaa&region=x")
		k2 := MustOpenKeeper(t, testScheme+"://kms/key1?token=bbb&region=x")
		k3 := MustOpenKeeper(t, testScheme+"://kms/key2?region=x")
		if !strings.HasPrefix(k1.ID(), testScheme+":") || len(k1.ID()) != len(testScheme)+1+16 {
			t.Fatalf("ID=%q", k1.ID())
		}
		if k1.ID() != k2.ID() || k1.ID() == k3.ID() {
			t.Fatalf("ids %s %s %s", k1.ID(), k2.ID(), k3.ID())
		}
		s := MustSeal(t, k1, []byte("v"), nil)
		if _, err := envelope.Open(ctx, k1, s, nil); err != nil {
			t.Fatal(err)
		}
		// A wrapped DEK the driver rejects is ErrDecrypt only if the driver
		// says the argument is invalid; here it says unknown.
		c := clone(s)
		c.WrappedDEK[0] ^= 1
		if _, err := envelope.Open(ctx, k1, c, nil); err == nil {
			t.Fatal("tampered DEK opened")
		}
	})

	// Ensure a driver error is scrubbed of the credentials in the URL.
	t.Run("ErrScrubbed", func(t *testing.T) {
		_, err := openKeeper(testScheme+"://user:pa55word@fail/key?token=t0psecret#frag", envelope.OpenOptions{})
		if err == nil {
			t.Fatal("expected error")
		}
		mustNotContain(t, err, "pa55word", "t0psecret", "user:")
		if !strings.Contains(err.Error(), "REDACTED") {
			t.Fatalf("err=%v", err)
		}
	})

	// Ensure an unknown scheme names the supported ones and nothing else of the URL.
	t.Run("ErrUnknownScheme", func(t *testing.T) {
		_, err := openKeeper("hashivault://s3cr3t@vault/key?token=hunter2", envelope.OpenOptions{})
		if err == nil {
			t.Fatal("expected error")
		}
		for _, want := range []string{`unknown keeper scheme "hashivault"`, "file://", "base64key://"} {
			if !strings.Contains(err.Error(), want) {
				t.Fatalf("err=%v, want %q", err, want)
			}
		}
		mustNotContain(t, err, "s3cr3t", "hunter2")
		for _, u := range []string{"", "kek.key", "://x", "c2VjcmV0a2V5bWF0ZXJpYWw="} {
			_, err := openKeeper(u, envelope.OpenOptions{})
			if err == nil || !strings.Contains(err.Error(), "invalid keeper URL") {
				t.Fatalf("%q: err=%v", u, err)
			}
			if u != "" {
				mustNotContain(t, err, u)
			}
		}
	})
}

func TestRedact(t *testing.T) {
	key := make([]byte, 32)
	rand.Read(key)
	b64 := base64.URLEncoding.EncodeToString(key)
	for _, c := range []struct{ in, want string }{
		{"file://custos-data/kek.key", "file://custos-data/kek.key"},
		{"file:///var/lib/custos/kek.key", "file:///var/lib/custos/kek.key"},
		{"base64key://" + b64, "base64key://REDACTED"},
		{"BASE64KEY://" + b64, "BASE64KEY://REDACTED"},
		{"base64key://", "base64key://REDACTED"},
		{"hashivault://mykey?engine=transit", "hashivault://mykey?engine=transit"},
		{"hashivault://mykey?token=abc&engine=transit", "hashivault://mykey?engine=transit&token=REDACTED"},
		{"https://user:pw@host/k", "https://REDACTED@host/k"},
		{"awskms://alias/x?region=us-east-1#frag", "awskms://alias/x?region=us-east-1#REDACTED"},
		{b64, "REDACTED"},
		{"x://%zz", "x://REDACTED"},
	} {
		if got := envelope.Redact(c.in); got != c.want {
			t.Errorf("Redact(%q)=%q, want %q", c.in, got, c.want)
		}
	}
}

func TestOpenKeeper_FileRace(t *testing.T) {
	// Ensure processes creating the same key file at once all end up with
	// the one key that won, never a partly written file.
	for round := 0; round < 20; round++ {
		path := filepath.Join(t.TempDir(), "kek.key")
		ids := make([]string, 8)
		errs := make([]error, 8)
		var wg sync.WaitGroup
		for i := range ids {
			wg.Add(1)
			go func() {
				defer wg.Done()
				k, err := envelope.OpenKeeper(context.Background(), "file://"+path, envelope.OpenOptions{Create: true})
				if err != nil {
					errs[i] = err
					return
				}
				ids[i] = k.ID()
				_ = k.Close()
			}()
		}
		wg.Wait()
		for i := range ids {
			if errs[i] != nil {
				t.Fatalf("round %d: %v", round, errs[i])
			}
			if ids[i] != ids[0] {
				t.Fatalf("round %d: two different keys were used", round)
			}
		}
	}
}
