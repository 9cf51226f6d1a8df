// Package envelope is the only package of custos that holds key material.
//
// Every value is sealed under its own fresh 256-bit data key (DEK) with
// AES-256-GCM and a random 96-bit nonce; the DEK is then wrapped by a
// key-encryption key (KEK) held by a Keeper. Stores only ever see a Sealed:
// the ciphertext, the wrapped DEK and the id of the keeper that wrapped it.
//
// A ciphertext is one format byte, the nonce and the GCM output (ciphertext
// and tag). The additional authenticated data (AAD) binds it to the row it
// belongs to (see SecretAAD), so a ciphertext copied to another row fails to
// open. Rotating the KEK re-wraps DEKs (Rewrap) without touching ciphertext.
//
// Errors of this package never contain key material or plaintext.
package envelope

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
)

// ErrDecrypt is returned, wrapped with details that name no key material,
// whenever a value cannot be opened: a tampered ciphertext or wrapped DEK, a
// wrong KEK, a wrong AAD or an unknown format.
var ErrDecrypt = errors.New("envelope: decryption failed")

// Ciphertext format versions (the first byte of Sealed.Ciphertext).
const (
	formatV1 byte = 1 // AES-256-GCM, 96-bit random nonce, 128-bit tag
)

const (
	dekSize   = 32                      // AES-256
	nonceSize = 12                      // GCM standard nonce
	tagSize   = 16                      // GCM tag
	overhead  = 1 + nonceSize + tagSize // format byte + nonce + tag
)

// Sealed is what is stored for one encrypted value.
type Sealed struct {
	Ciphertext []byte // format byte || nonce || AES-256-GCM output
	WrappedDEK []byte // the DEK, wrapped by the keeper named KeeperID
	KeeperID   string // Keeper.ID() of the keeper that wrapped the DEK
}

// Seal encrypts plaintext under a fresh DEK, bound to aad, and wraps the DEK
// with k. The DEK is cleared from memory before Seal returns.
func Seal(ctx context.Context, k Keeper, plaintext, aad []byte) (*Sealed, error) {
	if k == nil {
		return nil, errors.New("envelope: seal: no keeper")
	}
	dek := make([]byte, dekSize)
	defer clear(dek)
	rand.Read(dek) // never fails; crashes the program if the OS cannot provide randomness

	aead, err := newAEAD(dek)
	if err != nil {
		return nil, fmt.Errorf("envelope: seal: %w", err)
	}
	ct := make([]byte, 1, overhead+len(plaintext))
	ct[0] = formatV1
	ct = aead.Seal(ct, nil, plaintext, aad) // #nosec G407 -- nil nonce: the AEAD from cipher.NewGCMWithRandomNonce draws a random nonce itself

	wrapped, err := k.Wrap(ctx, dek)
	if err != nil {
		return nil, err
	}
	return &Sealed{Ciphertext: ct, WrappedDEK: wrapped, KeeperID: k.ID()}, nil
}

// Open unwraps the DEK of s with k and decrypts s.Ciphertext, checking aad.
// It returns an error wrapping ErrDecrypt if s was sealed by another keeper,
// has an unknown format, or was tampered with, or if aad differs from the
// one given to Seal. The caller owns the returned plaintext and should clear
// it once used. The DEK is cleared from memory before Open returns.
func Open(ctx context.Context, k Keeper, s *Sealed, aad []byte) ([]byte, error) {
	if k == nil {
		return nil, errors.New("envelope: open: no keeper")
	}
	if s == nil {
		return nil, fmt.Errorf("%w: nothing to open", ErrDecrypt)
	}
	if id := k.ID(); s.KeeperID != id {
		return nil, fmt.Errorf("%w: the value was sealed by keeper %s but keeper %s is open (wrong --keeper, or an unfinished KEK rotation?)",
			ErrDecrypt, safeID(s.KeeperID), id)
	}
	if len(s.Ciphertext) == 0 {
		return nil, fmt.Errorf("%w: empty ciphertext", ErrDecrypt)
	}
	if f := s.Ciphertext[0]; f != formatV1 {
		return nil, fmt.Errorf("%w: unknown ciphertext format %d", ErrDecrypt, f)
	}
	if len(s.Ciphertext) < overhead {
		return nil, fmt.Errorf("%w: ciphertext too short", ErrDecrypt)
	}

	dek, err := k.Unwrap(ctx, s.WrappedDEK)
	if err != nil {
		return nil, err
	}
	defer clear(dek)
	if len(dek) != dekSize {
		return nil, fmt.Errorf("%w: keeper %s returned a data key of the wrong size", ErrDecrypt, k.ID())
	}
	aead, err := newAEAD(dek)
	if err != nil {
		return nil, fmt.Errorf("envelope: open: %w", err)
	}
	pt, err := aead.Open(nil, nil, s.Ciphertext[1:], aad)
	if err != nil {
		return nil, fmt.Errorf("%w: ciphertext or additional data do not authenticate", ErrDecrypt)
	}
	return pt, nil
}

// Rewrap unwraps a wrapped DEK with from and wraps it again with to, for a
// KEK rotation; the ciphertext it protects is untouched. Store the result
// with to.ID() as the new keeper id. The DEK is cleared from memory before
// Rewrap returns.
func Rewrap(ctx context.Context, from, to Keeper, wrapped []byte) ([]byte, error) {
	if from == nil || to == nil {
		return nil, errors.New("envelope: rewrap: no keeper")
	}
	dek, err := from.Unwrap(ctx, wrapped)
	if err != nil {
		return nil, err
	}
	defer clear(dek)
	if len(dek) != dekSize {
		return nil, fmt.Errorf("%w: keeper %s returned a data key of the wrong size", ErrDecrypt, from.ID())
	}
	return to.Wrap(ctx, dek)
}

// Domain-separation labels of the AADs this package builds.
const (
	secretLabel   = "custos/secret/v1"
	canaryLabel   = "custos/canary/v1"
	artifactLabel = "custos/artifact/v1"
)

// SecretAAD returns the additional authenticated data that binds a secret
// version's ciphertext to its org, secret id and version. The encoding is
// unambiguous: a domain-separation label and each string prefixed by its
// 32-bit big-endian length, then the version as a 64-bit big-endian integer.
func SecretAAD(orgID, secretID string, version int) []byte {
	b := make([]byte, 0, 3*4+len(secretLabel)+len(orgID)+len(secretID)+8)
	b = appendPart(b, secretLabel)
	b = appendPart(b, orgID)
	b = appendPart(b, secretID)
	return binary.BigEndian.AppendUint64(b, uint64(int64(version))) // #nosec G115 -- bounded: ids are short and versions positive
}

// ArtifactAAD returns the additional authenticated data that binds a task
// artifact's ciphertext to its org, artifact id, run id and name. The
// encoding is that of SecretAAD: a domain-separation label and each string
// prefixed by its 32-bit big-endian length.
func ArtifactAAD(orgID, artifactID, runID, name string) []byte {
	b := make([]byte, 0, 5*4+len(artifactLabel)+len(orgID)+len(artifactID)+len(runID)+len(name))
	b = appendPart(b, artifactLabel)
	b = appendPart(b, orgID)
	b = appendPart(b, artifactID)
	b = appendPart(b, runID)
	return appendPart(b, name)
}

// appendPart appends s to b, prefixed with its length.
func appendPart(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s))) // #nosec G115 -- bounded: ids are short and versions positive
	return append(b, s...)
}

// newAEAD returns AES-256-GCM with random 96-bit nonces under dek.
func newAEAD(dek []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(dek)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCMWithRandomNonce(block)
}

// safeID returns id fit for an error message: keeper ids read from storage
// are not trusted to be short or printable, so odd ones are quoted and
// shortened.
func safeID(id string) string {
	if len(id) > 64 {
		return fmt.Sprintf("%q…", id[:64])
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c <= ' ' || c >= 0x7f {
			return fmt.Sprintf("%q", id)
		}
	}
	if id == "" {
		return `""`
	}
	return id
}
