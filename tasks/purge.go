package tasks

import (
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"

	"gocloud.dev/blob"

	"github.com/custos-dev/custos"
)

// Purge tuning.
const (
	purgeBatch = 100 // artifacts per store query
	// dryRunLimit bounds what a dry run lists (it cannot page: nothing it
	// sees goes away).
	dryRunLimit = 100000
	// OrphanAge is how old a blob without a row must be before the sweep
	// deletes it: a blob is written before its row, so a younger one may
	// belong to an upload in flight.
	OrphanAge = time.Hour
)

// Purge reasons of a custos.PurgeItem.
const (
	ReasonExpired  = "expired"
	ReasonReplaced = "replaced"
	ReasonOrphan   = "orphan" // a blob no row refers to, left by a crash
)

// Purge removes every artifact that was replaced or is past its expiry:
// blob first, then row with an audit record, so a purge cut short (a crash,
// a failed delete) is finished by the next one. It then sweeps blobs that
// no row refers to and that are older than OrphanAge. With dryRun it only
// reports what it would remove. Purge is idempotent; on errors it goes on
// with the other artifacts and returns the report with the errors.
func (s *Service) Purge(ctx context.Context, dryRun bool) (*custos.PurgeReport, error) {
	rep := &custos.PurgeReport{DryRun: dryRun, Removed: []*custos.PurgeItem{}}
	var errs []error
	if dryRun {
		as, err := s.store.PurgeableArtifacts(ctx, s.timeNow(), dryRunLimit)
		if err != nil {
			return nil, err
		}
		for _, a := range as {
			addItem(rep, purgeItem(a))
		}
	} else if err := s.purgeRows(ctx, rep); err != nil {
		errs = append(errs, err)
	}
	if err := s.sweepOrphans(ctx, rep, dryRun); err != nil {
		errs = append(errs, err)
	}
	return rep, errors.Join(errs...)
}

// addItem records it in rep.
func addItem(rep *custos.PurgeReport, it *custos.PurgeItem) {
	rep.Removed = append(rep.Removed, it)
	rep.Bytes += it.Size
}

// purgeItem describes the purge of a.
func purgeItem(a *custos.Artifact) *custos.PurgeItem {
	it := &custos.PurgeItem{ArtifactID: a.ID, OrgID: a.OrgID, TaskID: a.TaskID, RunID: a.RunID, Name: a.Name, Size: a.Size, Reason: ReasonExpired}
	switch {
	case a.ReplacedAt != nil && (a.ExpiresAt == nil || a.ReplacedAt.Before(*a.ExpiresAt)):
		it.Reason, it.ExpiredAt = ReasonReplaced, *a.ReplacedAt
	case a.ExpiresAt != nil:
		it.ExpiredAt = *a.ExpiresAt
	}
	return it
}

// purgeRows deletes purgeable artifacts batch by batch until none is left
// (or only ones that failed this time).
func (s *Service) purgeRows(ctx context.Context, rep *custos.PurgeReport) error {
	purged, failed := map[string]bool{}, map[string]bool{}
	var errs []error
	for {
		as, err := s.store.PurgeableArtifacts(ctx, s.timeNow(), purgeBatch+len(failed))
		if err != nil {
			return errors.Join(append(errs, err)...)
		}
		progress := false
		for _, a := range as {
			if failed[a.ID] {
				continue
			} else if purged[a.ID] { // the store did not delete it: do not loop on it
				failed[a.ID] = true
				errs = append(errs, fmt.Errorf("tasks: purge artifact %s: row still there after its delete", a.ID))
				continue
			}
			purged[a.ID] = true
			if err := s.purgeOne(ctx, a); err != nil {
				failed[a.ID] = true
				errs = append(errs, err)
				continue
			}
			progress = true
			addItem(rep, purgeItem(a))
		}
		if !progress || len(as) < purgeBatch+len(failed) {
			return errors.Join(errs...)
		}
	}
}

// purgeOne deletes a's blob (already gone is fine), then its row with an
// audit record.
func (s *Service) purgeOne(ctx context.Context, a *custos.Artifact) error {
	if err := s.bucket.Delete(ctx, a.BlobKey); err != nil && !isNotFound(err) {
		s.log.Error("artifact purge: blob delete failed; retried next run", "artifact", a.ID, "org", a.OrgID, "err", err)
		return fmt.Errorf("tasks: purge artifact %s: delete blob: %w", a.ID, err)
	}
	it := purgeItem(a)
	ev := &custos.AuditEvent{OrgID: a.OrgID, Time: s.timeNow(), Action: custos.ActionArtifactPurge, Outcome: custos.OutcomeOK,
		Source: "server", Project: a.ProjectID, Target: a.ID,
		Reason: fmt.Sprintf("%s at %s; task %s, run %s, %d bytes", it.Reason, it.ExpiredAt.UTC().Format(time.RFC3339), quote(a.TaskID), a.RunID, a.Size)}
	if err := s.store.DeleteArtifact(ctx, a.ID, ev); err != nil {
		s.log.Error("artifact purge: row delete failed; retried next run", "artifact", a.ID, "org", a.OrgID, "err", err)
		return fmt.Errorf("tasks: purge artifact %s: delete row: %w", a.ID, err)
	}
	return nil
}

// orphanKeyRE matches the blob keys the sweep may delete: an artifact's
// (artifacts/<org>/<artifact>) and a stranded temporary file of one
// (fileblob writes <key>.<hex>.tmp next to it).
var orphanKeyRE = regexp.MustCompile(`^artifacts/(org_[0-9a-f]{16})/(art_[0-9a-f]{16})(\.[0-9a-f]{1,16}\.tmp)?$`)

// sweepOrphans deletes (or, dry, lists) blobs under BlobPrefix that no row
// refers to and that are older than OrphanAge. Keys it does not recognise
// are left alone.
func (s *Service) sweepOrphans(ctx context.Context, rep *custos.PurgeReport, dryRun bool) error {
	type orphan struct {
		key, org, id string
		size         int64
		mod          time.Time
	}
	var found []orphan
	it := s.bucket.List(&blob.ListOptions{Prefix: BlobPrefix})
	for {
		o, err := it.Next(ctx)
		if err == io.EOF {
			break
		} else if err != nil {
			return fmt.Errorf("tasks: sweep: list blobs: %w", err)
		}
		if o.IsDir {
			continue
		}
		if m := orphanKeyRE.FindStringSubmatch(o.Key); m != nil {
			found = append(found, orphan{key: o.Key, org: m[1], id: m[2], size: o.Size, mod: o.ModTime})
		}
	}
	if len(found) == 0 {
		return nil
	}
	// Read the rows after listing: a blob whose row lands in between is
	// then known; OrphanAge covers uploads still in flight.
	keys, err := s.store.ArtifactBlobKeys(ctx)
	if err != nil {
		return fmt.Errorf("tasks: sweep: %w", err)
	}
	cutoff := s.now().Add(-OrphanAge)
	var errs []error
	for _, o := range found {
		if keys[o.key] || !o.mod.Before(cutoff) {
			continue
		}
		item := &custos.PurgeItem{ArtifactID: o.id, OrgID: o.org, Size: o.size, Reason: ReasonOrphan, ExpiredAt: o.mod.UTC()}
		if !dryRun {
			if err := s.bucket.Delete(ctx, o.key); err != nil && !isNotFound(err) {
				s.log.Error("artifact purge: orphan blob delete failed", "artifact", o.id, "org", o.org, "err", err)
				errs = append(errs, fmt.Errorf("tasks: sweep: delete blob of %s: %w", o.id, err))
				continue
			}
			s.log.Info("artifact purge: orphan blob deleted", "artifact", o.id, "org", o.org, "bytes", o.size)
		}
		addItem(rep, item)
	}
	return errors.Join(errs...)
}

// RunPurger runs Purge at once and then every interval (an hour if not
// positive) until ctx ends, logging what each run removed as counts and
// bytes, never names, content or tokens.
func (s *Service) RunPurger(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = time.Hour
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		s.purgeAndLog(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// purgeAndLog runs one purge and logs its outcome.
func (s *Service) purgeAndLog(ctx context.Context) {
	rep, err := s.Purge(ctx, false)
	if err != nil && ctx.Err() != nil {
		return
	}
	if rep != nil && len(rep.Removed) > 0 {
		reasons := map[string]int{}
		for _, it := range rep.Removed {
			reasons[it.Reason]++
		}
		s.log.Info("artifact purge", "removed", len(rep.Removed), "bytes", rep.Bytes,
			"expired", reasons[ReasonExpired], "replaced", reasons[ReasonReplaced], "orphans", reasons[ReasonOrphan])
	}
	if err != nil {
		s.log.Error("artifact purge incomplete; the next run retries", "err", strings.ReplaceAll(err.Error(), "\n", "; "))
	}
}
