package tasks

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"

	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"

	"github.com/custos-dev/custos"
	"github.com/custos-dev/custos/envelope"
)

// BlobPrefix is where artifact ciphertexts live in the blob store:
// artifacts/<org id>/<artifact id>.
const BlobPrefix = "artifacts/"

// blobKey returns the blob key of artifact id of org.
func blobKey(orgID, id string) string {
	return BlobPrefix + orgID + "/" + id
}

// validateKind checks an artifact kind (empty is fine).
func validateKind(kind string) error {
	if kind != "" && !slices.Contains(custos.ArtifactKinds, kind) {
		return custos.Errorf(custos.EINVALID, "invalid artifact kind %s: use source, input, output or diff", quote(kind))
	}
	return nil
}

// PutArtifact implements custos.TaskService. The body is sealed under its
// own DEK, bound to org, artifact id, run and name; the ciphertext is
// written to the blob store first, then the row (a blob without a row is
// swept by Purge).
func (s *Service) PutArtifact(ctx context.Context, permit, taskID, runID, name, kind string, body io.Reader) (*custos.Artifact, error) {
	if runID == "" {
		return nil, custos.Errorf(custos.EINVALID, "no run id")
	}
	sc, err := s.scope(ctx, permit, taskID, runID)
	if err != nil {
		return nil, err
	}
	if err := custos.ValidateArtifactName(name); err != nil {
		return nil, err
	} else if err := validateKind(kind); err != nil {
		return nil, err
	} else if body == nil {
		return nil, custos.Errorf(custos.EINVALID, "no artifact body")
	} else if sc.run.CompletedAt != nil {
		if t, err := s.store.FindTask(ctx, sc.permit.OrgID, sc.permit.ProjectID, sc.permit.TaskID); err == nil && t.CompletedAt != nil {
			return nil, custos.Errorf(custos.ECONFLICT, "task %s is complete; its artifacts can be read until they expire, no new ones stored", quote(t.ID))
		}
		return nil, custos.Errorf(custos.ECONFLICT, "run %s is complete; start a new run", sc.run.ID)
	}
	plain, err := io.ReadAll(io.LimitReader(body, s.maxArt+1))
	if err != nil {
		return nil, fmt.Errorf("tasks: read artifact: %w", err)
	}
	defer clear(plain)
	if int64(len(plain)) > s.maxArt {
		return nil, custos.Errorf(custos.ETOOLARGE, "artifact %s is larger than %d bytes", quote(name), s.maxArt)
	}
	p := sc.permit
	sum := sha256.Sum256(plain)
	a := &custos.Artifact{ID: custos.NewID(custos.PrefixArtifact), OrgID: p.OrgID, ProjectID: p.ProjectID, TaskID: p.TaskID,
		RunID: runID, Name: name, Kind: kind, Size: int64(len(plain)), SHA256: hex.EncodeToString(sum[:]), CreatedAt: s.timeNow()}
	a.BlobKey = blobKey(a.OrgID, a.ID)
	sealed, err := envelope.Seal(ctx, s.keeper, plain, envelope.ArtifactAAD(a.OrgID, a.ID, a.RunID, a.Name))
	if err != nil {
		return nil, err
	}
	a.WrappedDEK, a.KeeperID = sealed.WrappedDEK, sealed.KeeperID
	if err := s.bucket.WriteAll(ctx, a.BlobKey, sealed.Ciphertext, writerOptions()); err != nil {
		s.log.Error("artifact blob write failed", "artifact", a.ID, "org", a.OrgID, "err", err)
		return nil, custos.Errorf(custos.EUNAVAILABLE, "the artifact could not be written to the blob store; nothing was stored")
	}
	ev := sc.event(ctx, s, custos.ActionArtifactPut)
	ev.Target, ev.Reason = a.ID, fmt.Sprintf("run %s, %d bytes", runID, a.Size)
	if err := s.store.PutArtifact(ctx, a, s.maxRun, ev); err != nil {
		if derr := s.bucket.Delete(context.WithoutCancel(ctx), a.BlobKey); derr != nil && gcerrors.Code(derr) != gcerrors.NotFound {
			s.log.Warn("artifact blob left without a row; the purge sweep removes it", "artifact", a.ID, "org", a.OrgID, "err", derr)
		}
		if custos.ErrorCode(err) == custos.ETOOLARGE {
			return nil, custos.Errorf(custos.ETOOLARGE, "run %s would hold more than %d bytes of artifacts", runID, s.maxRun)
		}
		return nil, err
	}
	return a, nil
}

// writerOptions makes file:// blobs readable by their owner only; other
// drivers ignore it.
func writerOptions() *blob.WriterOptions {
	return &blob.WriterOptions{
		ContentType: "application/octet-stream",
		BeforeWrite: func(as func(any) bool) error {
			var f *os.File
			if as(&f) && f != nil {
				return f.Chmod(0o600)
			}
			return nil
		},
	}
}

// GetArtifact implements custos.TaskService. An artifact past its expiry is
// refused whether or not the purge has removed it yet.
func (s *Service) GetArtifact(ctx context.Context, permit, taskID, runID, name string) (*custos.Artifact, []byte, error) {
	if runID == "" {
		return nil, nil, custos.Errorf(custos.EINVALID, "no run id")
	}
	sc, err := s.scope(ctx, permit, taskID, runID)
	if err != nil {
		return nil, nil, err
	}
	if err := custos.ValidateArtifactName(name); err != nil {
		return nil, nil, err
	}
	p := sc.permit
	a, err := s.store.FindArtifact(ctx, p.OrgID, runID, name)
	if custos.ErrorCode(err) == custos.ENOTFOUND {
		return nil, nil, custos.Errorf(custos.ENOTFOUND, "run %s has no artifact %s", runID, quote(name))
	} else if err != nil {
		return nil, nil, err
	}
	if a.OrgID != p.OrgID || a.ProjectID != p.ProjectID || a.TaskID != p.TaskID || a.RunID != runID {
		return nil, nil, fmt.Errorf("tasks: store returned artifact %s of another scope", a.ID)
	}
	if a.ExpiresAt != nil && !s.timeNow().Before(*a.ExpiresAt) {
		return nil, nil, custos.Errorf(custos.EEXPIRED, "artifact %s expired at %s and is being purged", quote(name), a.ExpiresAt.Format("2006-01-02T15:04:05Z07:00"))
	}
	ct, err := s.bucket.ReadAll(ctx, a.BlobKey)
	if err != nil {
		s.log.Error("artifact blob read failed", "artifact", a.ID, "org", a.OrgID, "err", err)
		return nil, nil, custos.Errorf(custos.EUNAVAILABLE, "the artifact could not be read from the blob store")
	}
	plain, err := envelope.Open(ctx, s.keeper, &envelope.Sealed{Ciphertext: ct, WrappedDEK: a.WrappedDEK, KeeperID: a.KeeperID},
		envelope.ArtifactAAD(a.OrgID, a.ID, a.RunID, a.Name))
	if err != nil {
		return nil, nil, fmt.Errorf("tasks: open artifact %s: %w", a.ID, err)
	}
	sum := sha256.Sum256(plain)
	if want, err := hex.DecodeString(a.SHA256); err != nil || !bytes.Equal(sum[:], want) || int64(len(plain)) != a.Size {
		clear(plain)
		return nil, nil, fmt.Errorf("tasks: artifact %s does not match its recorded hash or size", a.ID)
	}
	ev := sc.event(ctx, s, custos.ActionArtifactGet)
	ev.Target, ev.Reason = a.ID, "run "+runID
	if err := s.store.AppendAudit(ctx, []*custos.AuditEvent{ev}, nil); err != nil {
		clear(plain)
		return nil, nil, s.auditFailed(ev.Action, err)
	}
	return a, plain, nil
}

// ListArtifacts implements custos.TaskService. Expired artifacts are left
// out: they can no longer be read.
func (s *Service) ListArtifacts(ctx context.Context, permit, taskID, runID string) ([]*custos.Artifact, error) {
	if runID == "" {
		return nil, custos.Errorf(custos.EINVALID, "no run id")
	}
	sc, err := s.scope(ctx, permit, taskID, runID)
	if err != nil {
		return nil, err
	}
	as, err := s.store.ListArtifacts(ctx, sc.permit.OrgID, runID)
	if err != nil {
		return nil, err
	}
	now := s.timeNow()
	live := as[:0]
	for _, a := range as {
		if a.ExpiresAt == nil || now.Before(*a.ExpiresAt) {
			live = append(live, a)
		}
	}
	return live, nil
}

// isNotFound reports whether err is a blob store's "no such blob".
func isNotFound(err error) bool {
	return gcerrors.Code(err) == gcerrors.NotFound || errors.Is(err, os.ErrNotExist)
}
