package envelope

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
)

// canaryPlaintext is the known value sealed in a canary.
const canaryPlaintext = "custos canary v1"

// canary is the encoded form of a canary blob.
type canary struct {
	V          int    `json:"v"`
	KeeperID   string `json:"keeper_id"`
	WrappedDEK []byte `json:"wrapped_dek"`
	Ciphertext []byte `json:"ciphertext"`
}

// canaryAAD binds a canary to the keeper id it names.
func canaryAAD(keeperID string) []byte {
	return appendPart(appendPart(nil, canaryLabel), keeperID)
}

// NewCanary seals a known value with k and returns it encoded, with the
// keeper's id, for the database's meta table. CheckCanary later proves that
// a keeper holds the KEK the database was written with, before anything is
// written with a wrong one.
func NewCanary(ctx context.Context, k Keeper) ([]byte, error) {
	if k == nil {
		return nil, errors.New("envelope: canary: no keeper")
	}
	s, err := Seal(ctx, k, []byte(canaryPlaintext), canaryAAD(k.ID()))
	if err != nil {
		return nil, err
	}
	return json.Marshal(canary{V: 1, KeeperID: s.KeeperID, WrappedDEK: s.WrappedDEK, Ciphertext: s.Ciphertext})
}

// CheckCanary returns nil if k opens blob, a canary made by NewCanary. It
// returns an error wrapping ErrDecrypt if k holds another KEK, and a plain
// error if blob is not a canary.
func CheckCanary(ctx context.Context, k Keeper, blob []byte) error {
	if k == nil {
		return errors.New("envelope: canary: no keeper")
	}
	var c canary
	if err := json.Unmarshal(blob, &c); err != nil || c.V != 1 || c.KeeperID == "" {
		return errors.New("envelope: this database's KEK canary is malformed")
	}
	wrong := func() error {
		return fmt.Errorf("%w: the KEK of keeper %s cannot open this database's canary (sealed by keeper %s): wrong --keeper?",
			ErrDecrypt, k.ID(), safeID(c.KeeperID))
	}
	if c.KeeperID != k.ID() {
		return wrong()
	}
	pt, err := Open(ctx, k, &Sealed{Ciphertext: c.Ciphertext, WrappedDEK: c.WrappedDEK, KeeperID: c.KeeperID}, canaryAAD(c.KeeperID))
	if errors.Is(err, ErrDecrypt) {
		return wrong()
	} else if err != nil {
		return fmt.Errorf("envelope: check canary: %w", err)
	}
	if subtle.ConstantTimeCompare(pt, []byte(canaryPlaintext)) != 1 {
		return wrong()
	}
	return nil
}
