package tasks

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"sort"
	"strings"

	"gocloud.dev/blob"
	"gocloud.dev/blob/fileblob"

	"github.com/custos-dev/custos/envelope"
)

// OpenBucket opens the blob store of artifacts named by rawURL:
//
//   - file://PATH: a directory, relative (file://custos-data/blobs) or
//     absolute (file:///var/lib/custos/blobs), created 0700 if missing; blobs
//     are written 0600 and without metadata sidecar files, their temporary
//     files beside them (never in a shared temp dir).
//   - s3://BUCKET?region=…: AWS S3 or an S3-compatible server, with the
//     credentials of the AWS SDK's default chain (environment, shared
//     config, instance role) — never in the URL.
//   - any other scheme a gocloud.dev/blob driver linked into the build
//     registers.
//
// Errors never contain credentials the URL may carry.
func OpenBucket(ctx context.Context, rawURL string) (*blob.Bucket, error) {
	scheme, rest, ok := strings.Cut(rawURL, "://")
	if !ok || scheme == "" {
		return nil, fmt.Errorf("tasks: invalid blob store URL %s: want %s", envelope.Redact(rawURL), supportedBlobSchemes())
	}
	if strings.EqualFold(scheme, "file") {
		return openFileBucket(rest)
	}
	b, err := blob.OpenBucket(ctx, rawURL)
	if err != nil {
		return nil, &openError{url: envelope.Redact(rawURL), msg: scrub(err.Error(), rawURL), err: err}
	}
	return b, nil
}

// openFileBucket opens (creating it 0700) the directory dir.
func openFileBucket(dir string) (*blob.Bucket, error) {
	if dir == "" || strings.ContainsAny(dir, "?#") {
		return nil, errors.New("tasks: a file:// blob store URL is file://PATH, e.g. file://custos-data/blobs, without query or fragment")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("tasks: create blob store directory: %w", err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("tasks: blob store directory: %w", err)
	} else if !fi.IsDir() {
		return nil, fmt.Errorf("tasks: blob store %s is not a directory", dir)
	}
	b, err := fileblob.OpenBucket(dir, &fileblob.Options{
		DirFileMode: 0o700,
		NoTempDir:   true, // ciphertext never lands in a shared /tmp, and renames stay on one file system
		Metadata:    fileblob.MetadataDontWrite,
	})
	if err != nil {
		return nil, fmt.Errorf("tasks: open blob store directory: %w", err)
	}
	return b, nil
}

// openError is a failure to open a blob store whose message is scrubbed
// of the URL's credentials; the driver's error stays reachable with
// errors.Is and errors.As.
type openError struct {
	url string // redacted
	msg string // scrubbed
	err error
}

// Error implements the error interface.
func (e *openError) Error() string { return "tasks: open blob store " + e.url + ": " + e.msg }

// Unwrap returns the driver's error.
func (e *openError) Unwrap() error { return e.err }

// scrub removes from msg every credential rawURL may carry: the URL itself
// in its raw and parsed forms, its userinfo, its fragment and the values of
// query parameters whose names suggest a credential.
func scrub(msg, rawURL string) string {
	red := envelope.Redact(rawURL)
	whole := []string{rawURL}
	var parts []string
	if u, err := url.Parse(rawURL); err == nil {
		whole = append(whole, u.String())
		if u.User != nil {
			parts = append(parts, u.User.String(), u.User.Username())
			if p, ok := u.User.Password(); ok {
				parts = append(parts, p, url.QueryEscape(p))
			}
		}
		for name, vs := range u.Query() {
			if sensitiveParam(name) {
				for _, v := range vs {
					parts = append(parts, v, url.QueryEscape(v))
				}
			}
		}
		parts = append(parts, u.Fragment)
	}
	for _, w := range whole {
		msg = strings.ReplaceAll(msg, w, red)
	}
	// Longest first, so a part never spoils the replacement of a longer one.
	sort.Slice(parts, func(i, j int) bool { return len(parts[i]) > len(parts[j]) })
	for _, p := range parts {
		if p != "" {
			msg = strings.ReplaceAll(msg, p, "REDACTED")
		}
	}
	return msg
}

// sensitiveParam reports whether a query parameter name suggests a
// credential.
func sensitiveParam(name string) bool {
	n := strings.ToLower(name)
	for _, s := range []string{"token", "secret", "passw", "pwd", "key", "auth", "cred", "sig", "session"} {
		if strings.Contains(n, s) {
			return true
		}
	}
	return false
}

// supportedBlobSchemes lists the blob store URL forms this build opens.
func supportedBlobSchemes() string {
	list := []string{"file://PATH"}
	for _, s := range blob.DefaultURLMux().BucketSchemes() {
		if s != "file" {
			list = append(list, s+"://…")
		}
	}
	return strings.Join(list, ", ")
}
