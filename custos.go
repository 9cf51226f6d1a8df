// Package custos holds the domain of the custos trust gateway: its types, the
// service and store interfaces, validation rules and the one Error type. It
// imports only the standard library; adapters (store/sqlite, http, …) depend
// on it, never the other way round.
package custos

import (
	"context"
	"regexp"
	"time"
)

// DefaultProject is the project used when a caller names none.
const DefaultProject = "default"

// Limits shared by every entry point.
const (
	MaxValueBytes       = 64 << 10 // largest secret value
	MaxDescriptionBytes = 1024
	MaxTags             = 32
	MaxNamesPerRequest  = 256
)

var (
	nameRE     = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,127}$`)
	projectRE  = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)
	tagKeyRE   = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)
	tagValueRE = regexp.MustCompile(`^[A-Za-z0-9._:/@+-]{0,128}$`)
	idRE       = regexp.MustCompile(`^[a-z]{2,4}_[0-9a-f]{16}$`)
	labelRE    = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9 ._@+-]{0,63}$`)
)

// ValidateName reports whether s is a valid secret name: an environment
// variable name of at most 128 characters.
func ValidateName(s string) error {
	if !nameRE.MatchString(s) {
		return Errorf(EINVALID, "invalid secret name %q: use letters, digits and _, starting with a letter or _, at most 128 characters", truncate(s))
	}
	return nil
}

// ValidateProject reports whether s is a valid project name.
func ValidateProject(s string) error {
	if !projectRE.MatchString(s) {
		return Errorf(EINVALID, "invalid project %q: use lowercase letters, digits, '.', '_' and '-', at most 63 characters", truncate(s))
	}
	return nil
}

// ValidateTag reports whether k=v is a valid tag.
func ValidateTag(k, v string) error {
	if !tagKeyRE.MatchString(k) {
		return Errorf(EINVALID, "invalid tag key %q: use lowercase letters, digits, '.', '_' and '-'", truncate(k))
	}
	if !tagValueRE.MatchString(v) {
		return Errorf(EINVALID, "invalid tag value %q for key %q", truncate(v), k)
	}
	return nil
}

// ValidateTags validates every tag and their count.
func ValidateTags(tags map[string]string) error {
	if len(tags) > MaxTags {
		return Errorf(EINVALID, "too many tags: %d (at most %d)", len(tags), MaxTags)
	}
	for k, v := range tags {
		if err := ValidateTag(k, v); err != nil {
			return err
		}
	}
	return nil
}

// ValidateID reports whether s looks like an id minted by NewID with prefix.
func ValidateID(prefix, s string) error {
	if !idRE.MatchString(s) || s[:len(prefix)+1] != prefix+"_" {
		return Errorf(EINVALID, "invalid id %q: expected %s_ followed by 16 hex digits", truncate(s), prefix)
	}
	return nil
}

// ValidateLabel reports whether s is a valid human label (key names, agents,
// hostnames, OS users): printable, at most 64 characters.
func ValidateLabel(what, s string) error {
	if !labelRE.MatchString(s) {
		return Errorf(EINVALID, "invalid %s %q: use letters, digits, space and . _ @ + -, at most 64 characters", what, truncate(s))
	}
	return nil
}

// truncate shortens s for an error message so hostile input cannot make an
// error large.
func truncate(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

// Clock returns the current time. Services take one so tests can move time.
type Clock func() time.Time

// Org is a tenant: every object belongs to exactly one org.
type Org struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
}

// OrgStore persists orgs.
type OrgStore interface {
	// CountOrgs returns how many orgs exist (0 on a fresh database).
	CountOrgs(ctx context.Context) (int, error)
	// FindOrg returns org id. Returns ENOTFOUND.
	FindOrg(ctx context.Context, id string) (*Org, error)
}
