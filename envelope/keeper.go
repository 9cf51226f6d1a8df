package envelope

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"

	"gocloud.dev/gcerrors"
	"gocloud.dev/secrets"
	"gocloud.dev/secrets/localsecrets"
)

// Keeper wraps and unwraps data keys with a key-encryption key (KEK). Its
// methods are safe for concurrent use.
type Keeper interface {
	// ID returns a stable, non-secret id of the KEK. It is stored beside
	// every wrapped DEK, so a value is only ever opened with its own KEK.
	ID() string
	// Wrap encrypts dek with the KEK.
	Wrap(ctx context.Context, dek []byte) ([]byte, error)
	// Unwrap decrypts a DEK wrapped by Wrap. Returns an error wrapping
	// ErrDecrypt if the KEK rejects wrapped (tampered, or another KEK's).
	Unwrap(ctx context.Context, wrapped []byte) ([]byte, error)
	// Close releases the keeper.
	Close() error
}

// OpenOptions tunes OpenKeeper.
type OpenOptions struct {
	// Create makes a file:// keeper create its key file (mode 0600, missing
	// directories 0700) with a fresh random key if it does not exist.
	Create bool
}

// Keeper URL schemes implemented by this package. Any other scheme is opened
// through gocloud.dev/secrets, whose drivers register themselves when a
// build imports them.
const (
	SchemeFile      = "file"      // file://PATH: a local key file
	SchemeBase64Key = "base64key" // base64key://KEY: an inline key
)

// redacted replaces key material in printed keeper URLs.
const redacted = "REDACTED"

// keyIDLabel is the message HMACed with a local KEK to derive its id.
const keyIDLabel = "custos keeper id"

// maxKeyFileSize bounds what is read from a key file.
const maxKeyFileSize = 1024

// OpenKeeper opens the keeper named by url:
//
//   - file://PATH: a key file holding the standard base64 encoding of 32
//     bytes and an optional trailing newline. PATH is relative
//     (file://custos-data/kek.key) or absolute (file:///var/lib/custos/kek.key).
//     A key file readable by group or others is refused. With opts.Create
//     a missing key file is created with a fresh random key.
//   - base64key://KEY: an inline key, the base64 (URL or standard alphabet)
//     encoding of 32 bytes, as in gocloud.dev/secrets/localsecrets.
//   - any other scheme a gocloud.dev/secrets driver linked into the build
//     registers (hashivault://, awskms://, gcpkms://, azurekeyvault://).
//
// file:// and base64key:// keepers with the same key have the same ID, so a
// replica may be given the key inline. Errors never contain key material.
func OpenKeeper(ctx context.Context, url string, opts OpenOptions) (Keeper, error) {
	scheme, rest, ok := strings.Cut(url, "://")
	if !ok || scheme == "" {
		return nil, fmt.Errorf("envelope: invalid keeper URL: want %s", supportedSchemes())
	}
	switch strings.ToLower(scheme) {
	case SchemeFile:
		return openFileKeeper(rest, opts)
	case SchemeBase64Key:
		return openInlineKeeper(rest)
	}
	return openCloudKeeper(ctx, strings.ToLower(scheme), url)
}

// Redact returns url fit to print or log: the key of a base64key:// URL,
// userinfo, fragments and query parameters that look like credentials
// (token, secret, password, key…) are replaced with "REDACTED". A string
// without a scheme is redacted entirely, since it may be a bare key.
func Redact(url string) string {
	scheme, _, ok := strings.Cut(url, "://")
	if !ok || scheme == "" {
		return redacted
	}
	switch strings.ToLower(scheme) {
	case SchemeFile:
		return url
	case SchemeBase64Key:
		return scheme + "://" + redacted
	}
	return redactURL(scheme, url)
}

// redactURL redacts a generic URL.
func redactURL(scheme, raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return scheme + "://" + redacted
	}
	if u.User != nil {
		u.User = url.User(redacted)
	}
	if u.Fragment != "" || u.RawFragment != "" {
		u.Fragment, u.RawFragment = redacted, ""
	}
	if u.RawQuery != "" {
		q, err := url.ParseQuery(u.RawQuery)
		if err != nil {
			u.RawQuery = redacted
		} else {
			changed := false
			for name, vs := range q {
				if sensitiveParam(name) {
					for i := range vs {
						vs[i] = redacted
					}
					changed = true
				}
			}
			if changed {
				u.RawQuery = q.Encode()
			}
		}
	}
	return u.String()
}

// sensitiveParam reports whether a query parameter name suggests a credential.
func sensitiveParam(name string) bool {
	n := strings.ToLower(name)
	for _, s := range []string{"token", "secret", "passw", "pwd", "key", "auth", "cred", "sig"} {
		if strings.Contains(n, s) {
			return true
		}
	}
	return false
}

// supportedSchemes lists the keeper URL forms this build can open.
func supportedSchemes() string {
	list := []string{SchemeFile + "://PATH", SchemeBase64Key + "://KEY"}
	for _, s := range secrets.DefaultURLMux().KeeperSchemes() {
		if s != SchemeFile && s != SchemeBase64Key {
			list = append(list, s+"://…")
		}
	}
	return strings.Join(list, ", ")
}

// keeper adapts a gocloud.dev/secrets keeper, opened once and reused.
type keeper struct {
	id    string
	sk    *secrets.Keeper
	local bool // a localsecrets keeper: any decryption error means a bad wrapped DEK
}

// ID implements Keeper.
func (k *keeper) ID() string { return k.id }

// Wrap implements Keeper.
func (k *keeper) Wrap(ctx context.Context, dek []byte) ([]byte, error) {
	b, err := k.sk.Encrypt(ctx, dek)
	if err != nil {
		return nil, fmt.Errorf("envelope: wrap data key with keeper %s: %w", k.id, err)
	}
	return b, nil
}

// Unwrap implements Keeper.
func (k *keeper) Unwrap(ctx context.Context, wrapped []byte) ([]byte, error) {
	b, err := k.sk.Decrypt(ctx, wrapped)
	if err != nil {
		code := gcerrors.Code(err)
		if code == gcerrors.InvalidArgument || (k.local && code == gcerrors.Unknown) {
			return nil, fmt.Errorf("%w: keeper %s cannot unwrap the data key (wrong KEK, or tampered)", ErrDecrypt, k.id)
		}
		return nil, fmt.Errorf("envelope: unwrap data key with keeper %s: %w", k.id, err)
	}
	return b, nil
}

// Close implements Keeper.
func (k *keeper) Close() error { return k.sk.Close() }

// newLocalKeeper returns a keeper over a 32-byte key. key is not retained.
func newLocalKeeper(key *[dekSize]byte) *keeper {
	mac := hmac.New(sha256.New, key[:])
	mac.Write([]byte(keyIDLabel))
	sum := mac.Sum(nil)
	return &keeper{
		id:    "local:" + hex.EncodeToString(sum[:8]),
		sk:    localsecrets.NewKeeper(*key),
		local: true,
	}
}

// openInlineKeeper opens a base64key:// keeper.
func openInlineKeeper(enc string) (Keeper, error) {
	if strings.Contains(enc, "%") {
		if s, err := url.PathUnescape(enc); err == nil {
			enc = s
		}
	}
	src := []byte(strings.TrimRight(enc, "="))
	defer clear(src)
	var buf [64]byte
	defer clear(buf[:])
	if base64.RawURLEncoding.DecodedLen(len(src)) > len(buf) {
		return nil, fmt.Errorf("envelope: base64key:// keeper: the key is too long: want the base64 encoding of %d random bytes", dekSize)
	}
	n, err := base64.RawURLEncoding.Decode(buf[:], src)
	if err != nil {
		n, err = base64.RawStdEncoding.Decode(buf[:], src)
	}
	if err != nil {
		return nil, fmt.Errorf("envelope: base64key:// keeper: the key is not valid base64: want the base64 encoding of %d random bytes", dekSize)
	}
	if n != dekSize {
		return nil, fmt.Errorf("envelope: base64key:// keeper: the key decodes to %d bytes, want %d", n, dekSize)
	}
	var key [dekSize]byte
	defer clear(key[:])
	copy(key[:], buf[:n])
	return newLocalKeeper(&key), nil
}

// openFileKeeper opens a file:// keeper, creating its key file if asked.
func openFileKeeper(path string, opts OpenOptions) (Keeper, error) {
	if path == "" {
		return nil, errors.New("envelope: file:// keeper needs a path, e.g. file://custos-data/kek.key")
	}
	var key [dekSize]byte
	defer clear(key[:])
	err := readKeyFile(path, &key)
	if errors.Is(err, fs.ErrNotExist) && opts.Create {
		err = createKeyFile(path, &key)
		if errors.Is(err, fs.ErrExist) { // another process created it first
			err = readKeyFile(path, &key)
		}
	}
	if err != nil {
		return nil, err
	}
	return newLocalKeeper(&key), nil
}

// readKeyFile reads the key in the file at path into key.
func readKeyFile(path string, key *[dekSize]byte) error {
	f, err := os.Open(path) // #nosec G304 -- the path is operator configuration (data dir, key file)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("envelope: key file %s: %w (check the keeper URL)", path, fs.ErrNotExist)
	} else if err != nil {
		return fmt.Errorf("envelope: open key file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("envelope: key file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("envelope: key file %s is not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 && runtime.GOOS != "windows" {
		return fmt.Errorf("envelope: key file %s is readable or writable by group or others (mode %04o): run chmod 600 %s", path, perm, path)
	}

	var raw [maxKeyFileSize]byte
	defer clear(raw[:])
	n, err := io.ReadFull(f, raw[:])
	if err == nil {
		return fmt.Errorf("envelope: key file %s is too large: want the base64 encoding of %d random bytes", path, dekSize)
	} else if err != io.EOF && err != io.ErrUnexpectedEOF {
		return fmt.Errorf("envelope: read key file: %w", err)
	}
	src := bytes.TrimRight(raw[:n], " \t\r\n")
	var buf [maxKeyFileSize]byte
	defer clear(buf[:])
	m, err := base64.StdEncoding.Decode(buf[:], src)
	if err != nil {
		return fmt.Errorf("envelope: key file %s is not valid: want the standard base64 encoding of %d random bytes", path, dekSize)
	}
	if m != dekSize {
		return fmt.Errorf("envelope: key file %s is not valid: it decodes to %d bytes, want %d", path, m, dekSize)
	}
	copy(key[:], buf[:m])
	return nil
}

// createKeyFile creates the key file at path (0600; missing directories
// 0700) holding a fresh random key, also stored into key. Returns an error
// wrapping fs.ErrExist if the file exists.
func createKeyFile(path string, key *[dekSize]byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("envelope: create key file directory: %w", err)
	}
	// Write the key to a temporary file and publish it with link(2), which
	// fails if path exists: another process never sees a half-written key,
	// and of two processes creating it at once exactly one wins.
	f, err := os.CreateTemp(dir, ".kek-*")
	if err != nil {
		return fmt.Errorf("envelope: create key file: %w", err)
	}
	tmp := f.Name()
	defer func() { _ = os.Remove(tmp) }()
	rand.Read(key[:])
	enc := make([]byte, base64.StdEncoding.EncodedLen(dekSize)+1)
	defer clear(enc)
	base64.StdEncoding.Encode(enc, key[:])
	enc[len(enc)-1] = '\n'

	err = f.Chmod(0o600)
	if err == nil {
		_, err = f.Write(enc)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		clear(key[:])
		return fmt.Errorf("envelope: write key file: %w", err)
	}
	if err := os.Link(tmp, path); err != nil {
		clear(key[:])
		return fmt.Errorf("envelope: create key file: %w", err)
	}
	// Make the new directory entry durable: losing the KEK loses every secret.
	if d, err := os.Open(dir); err == nil { // #nosec G304 -- the path is operator configuration (data dir, key file)
		_ = d.Sync() // best effort: some file systems cannot sync directories
		_ = d.Close()
	}
	return nil
}

// openCloudKeeper opens url through gocloud.dev/secrets.
func openCloudKeeper(ctx context.Context, scheme, url string) (Keeper, error) {
	if !slices.Contains(secrets.DefaultURLMux().KeeperSchemes(), scheme) {
		return nil, fmt.Errorf("envelope: unknown keeper scheme %q: this build supports %s", truncate(scheme), supportedSchemes())
	}
	safe := Redact(url)
	sk, err := secrets.OpenKeeper(ctx, url)
	if err != nil {
		// The driver's message may quote the URL and its credentials; keep
		// only a scrubbed copy of it.
		return nil, fmt.Errorf("envelope: open keeper %s: %s", safe, scrub(err.Error(), url, safe))
	}
	sum := sha256.Sum256([]byte(safe))
	return &keeper{id: scheme + ":" + hex.EncodeToString(sum[:8]), sk: sk}, nil
}

// scrub removes from msg the raw url and any credential it carries.
func scrub(msg, raw, safe string) string {
	msg = strings.ReplaceAll(msg, raw, safe)
	u, err := url.Parse(raw)
	if err != nil {
		if _, rest, _ := strings.Cut(raw, "://"); rest != "" {
			msg = strings.ReplaceAll(msg, rest, redacted)
		}
		return msg
	}
	var secretParts []string
	if u.User != nil {
		secretParts = append(secretParts, u.User.String(), u.User.Username())
		if p, ok := u.User.Password(); ok {
			secretParts = append(secretParts, p)
		}
	}
	secretParts = append(secretParts, u.Fragment, u.RawFragment)
	for _, kv := range strings.Split(u.RawQuery, "&") {
		name, v, _ := strings.Cut(kv, "=")
		if n, err := url.QueryUnescape(name); err == nil {
			name = n
		}
		if sensitiveParam(name) {
			secretParts = append(secretParts, v)
			if dv, err := url.QueryUnescape(v); err == nil {
				secretParts = append(secretParts, dv)
			}
		}
	}
	for _, p := range secretParts {
		if len(p) >= 3 { // shorter strings would garble the message, not protect anything
			msg = strings.ReplaceAll(msg, p, redacted)
		}
	}
	return msg
}

// truncate shortens s for an error message.
func truncate(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}
