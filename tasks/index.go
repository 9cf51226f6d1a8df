package tasks

import (
	"context"
	"fmt"
	"path"
	"strings"
	"unicode/utf8"

	"github.com/custos-dev/custos"
)

// ValidateIndexPath reports whether p is a valid path of a project index: a
// clean, relative, slash-separated path of valid UTF-8 without control
// characters, backslashes or ".." segments, at most
// custos.MaxIndexPathBytes bytes.
func ValidateIndexPath(p string) error {
	bad := func(why string) error {
		return custos.Errorf(custos.EINVALID, "invalid index path %s: %s", quote(p), why)
	}
	switch {
	case p == "":
		return bad("empty")
	case len(p) > custos.MaxIndexPathBytes:
		return bad(fmt.Sprintf("longer than %d bytes", custos.MaxIndexPathBytes))
	case !utf8.ValidString(p):
		return bad("not UTF-8")
	case p[0] == '/':
		return bad("absolute paths are not allowed")
	case len(p) >= 2 && p[1] == ':':
		return bad("drive letters are not allowed")
	}
	for _, r := range p {
		if r < 0x20 || r == 0x7f || r == '\\' || (r >= 0x80 && r < 0xa0) || r == '\u2028' || r == '\u2029' {
			return bad("control characters and backslashes are not allowed")
		}
	}
	if p == "." || p == ".." || strings.HasPrefix(p, "../") || path.Clean(p) != p {
		return bad("not a clean relative path (no '.', '..' or empty segments, no trailing slash)")
	}
	return nil
}

// validateSHA256 reports whether h is 64 lowercase hex digits.
func validateSHA256(p, h string) error {
	ok := len(h) == 64
	for i := 0; ok && i < len(h); i++ {
		c := h[i]
		ok = '0' <= c && c <= '9' || 'a' <= c && c <= 'f'
	}
	if !ok {
		return custos.Errorf(custos.EINVALID, "invalid sha256 for %s: want 64 lowercase hex digits", quote(p))
	}
	return nil
}

// ValidateIndexFiles checks a project index request: 1 to
// custos.MaxIndexFiles entries, each with a valid path (no path twice), a
// SHA-256 of 64 lowercase hex digits and a summary of valid UTF-8 without
// NUL of at most custos.MaxIndexSummaryBytes bytes.
func ValidateIndexFiles(files []custos.IndexFile) error {
	refs := make([]custos.IndexRef, len(files))
	for i, f := range files {
		refs[i] = custos.IndexRef{Path: f.Path, SHA256: f.SHA256}
	}
	if err := validateIndexRefs(refs); err != nil {
		return err
	}
	for _, f := range files {
		switch {
		case len(f.Summary) > custos.MaxIndexSummaryBytes:
			return custos.Errorf(custos.EINVALID, "summary of %s is longer than %d bytes; the index keeps summaries, never file content", quote(f.Path), custos.MaxIndexSummaryBytes)
		case !utf8.ValidString(f.Summary) || strings.IndexByte(f.Summary, 0) >= 0:
			return custos.Errorf(custos.EINVALID, "summary of %s is not UTF-8 text", quote(f.Path))
		}
	}
	return nil
}

// validateIndexRefs checks index paths and hashes: 1 to
// custos.MaxIndexFiles entries, each with a valid path (no path twice) and
// a SHA-256 of 64 lowercase hex digits.
func validateIndexRefs(refs []custos.IndexRef) error {
	if len(refs) == 0 {
		return custos.Errorf(custos.EINVALID, "no index paths given")
	} else if len(refs) > custos.MaxIndexFiles {
		return custos.Errorf(custos.EINVALID, "too many index paths: %d (at most %d per request)", len(refs), custos.MaxIndexFiles)
	}
	seen := make(map[string]bool, len(refs))
	for _, r := range refs {
		if err := ValidateIndexPath(r.Path); err != nil {
			return err
		} else if seen[r.Path] {
			return custos.Errorf(custos.EINVALID, "index path %s is given twice", quote(r.Path))
		} else if err := validateSHA256(r.Path, r.SHA256); err != nil {
			return err
		}
		seen[r.Path] = true
	}
	return nil
}

// PutIndexFiles implements custos.TaskService.
func (s *Service) PutIndexFiles(ctx context.Context, permit, projectID, indexID string, files []custos.IndexFile) (int, error) {
	sc, err := s.projectScope(ctx, permit, projectID)
	if err != nil {
		return 0, err
	}
	if err := custos.ValidateRef("indexId", indexID); err != nil {
		return 0, err
	} else if err := ValidateIndexFiles(files); err != nil {
		return 0, err
	}
	p := sc.permit
	clean := make([]custos.IndexFile, len(files))
	for i, f := range files {
		clean[i] = custos.IndexFile{Path: f.Path, SHA256: f.SHA256, Summary: f.Summary}
	}
	ev := sc.event(ctx, s, custos.ActionIndexPut)
	ev.Target, ev.Reason = indexID, fmt.Sprintf("%d files, task %s", len(clean), quote(p.TaskID))
	if err := s.store.PutIndexFiles(ctx, p.OrgID, p.ProjectID, indexID, clean, s.timeNow(), ev); err != nil {
		return 0, err
	}
	return len(clean), nil
}

// StaleIndexFiles implements custos.TaskService. Paths come back in the
// order of refs.
func (s *Service) StaleIndexFiles(ctx context.Context, permit, projectID, indexID string, refs []custos.IndexRef) ([]string, error) {
	sc, err := s.projectScope(ctx, permit, projectID)
	if err != nil {
		return nil, err
	}
	if err := custos.ValidateRef("indexId", indexID); err != nil {
		return nil, err
	} else if err := validateIndexRefs(refs); err != nil {
		return nil, err
	}
	paths := make([]string, len(refs))
	for i, r := range refs {
		paths[i] = r.Path
	}
	have, err := s.store.IndexHashes(ctx, sc.permit.OrgID, sc.permit.ProjectID, indexID, paths)
	if err != nil {
		return nil, err
	}
	stale := []string{}
	for _, r := range refs {
		if h, ok := have[r.Path]; !ok || h != r.SHA256 {
			stale = append(stale, r.Path)
		}
	}
	return stale, nil
}
