package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/custos-dev/custos"
	"github.com/custos-dev/custos/store/internal/column"
	"github.com/jackc/pgx/v5"
)

const deviceCols = `id, org_id, key_id, fingerprint, machine_user, hostname, agent, ip, status, level, created_at, decided_at, decided_by`

// scanDevice reads one devices row selected with deviceCols.
func scanDevice(sc scanner) (*custos.Device, error) {
	var d custos.Device
	if err := sc.Scan(&d.ID, &d.OrgID, &d.KeyID, &d.Fingerprint, &d.MachineUser, &d.Hostname, &d.Agent,
		&d.IP, &d.Status, &d.Level, column.Time(&d.CreatedAt), column.NullTime(&d.DecidedAt), &d.DecidedBy); err != nil {
		return nil, err
	}
	return &d, nil
}

// insertDevice inserts d. Returns ECONFLICT if its id or (org, fingerprint) exists.
func insertDevice(ctx context.Context, tx pgx.Tx, d *custos.Device) error {
	if _, err := tx.Exec(ctx, `INSERT INTO devices (`+deviceCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`,
		d.ID, d.OrgID, d.KeyID, d.Fingerprint, d.MachineUser, d.Hostname, d.Agent, d.IP, string(d.Status),
		string(d.Level), micros(d.CreatedAt), nullMicros(d.DecidedAt), d.DecidedBy); err != nil {
		return conflictOr(err, "device %q already exists", d.Fingerprint)
	}
	return nil
}

// CreateDevice inserts d with ev. Returns ECONFLICT if (org, fingerprint) exists.
func (s *Store) CreateDevice(ctx context.Context, d *custos.Device, ev *custos.AuditEvent) error {
	return s.tx(ctx, "create device", func(tx pgx.Tx) error {
		if err := insertDevice(ctx, tx, d); err != nil {
			return err
		}
		return appendEvents(ctx, tx, ev)
	})
}

// FindDevice returns the org's device with fingerprint. Returns ENOTFOUND.
func (s *Store) FindDevice(ctx context.Context, orgID, fingerprint string) (*custos.Device, error) {
	d, err := scanDevice(s.pool.QueryRow(ctx, `SELECT `+deviceCols+` FROM devices WHERE org_id = $1 AND fingerprint = $2`, orgID, fingerprint))
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil, custos.Errorf(custos.ENOTFOUND, "device %q not found", fingerprint)
	case err != nil:
		return nil, fail("find device", err)
	}
	return d, nil
}

// GetDevice returns device id of org. Returns ENOTFOUND.
func (s *Store) GetDevice(ctx context.Context, orgID, id string) (*custos.Device, error) {
	d, err := scanDevice(s.pool.QueryRow(ctx, `SELECT `+deviceCols+` FROM devices WHERE org_id = $1 AND id = $2`, orgID, id))
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil, custos.Errorf(custos.ENOTFOUND, "device %q not found", id)
	case err != nil:
		return nil, fail("get device", err)
	}
	return d, nil
}

// ListDevices returns the org's devices, oldest first; status "" means all.
func (s *Store) ListDevices(ctx context.Context, orgID string, status custos.DeviceStatus) ([]*custos.Device, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+deviceCols+` FROM devices WHERE org_id = $1 AND ($2 = '' OR status = $2)
		ORDER BY created_at, ord`, orgID, string(status))
	if err != nil {
		return nil, fail("list devices", err)
	}
	devs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*custos.Device, error) { return scanDevice(r) })
	if err != nil {
		return nil, fail("list devices", err)
	}
	if devs == nil {
		devs = []*custos.Device{}
	}
	return devs, nil
}

// UpdateDeviceStatus atomically moves device id to status to with level,
// DecidedAt=now and DecidedBy=by, only if its status is in from, with ev.
// The conditional update locks the row, so of concurrent decisions exactly
// one wins. Returns the updated device, ENOTFOUND, or ECONFLICT if its
// status is not in from.
func (s *Store) UpdateDeviceStatus(ctx context.Context, orgID, id string, from []custos.DeviceStatus, to custos.DeviceStatus, level custos.Level, by string, now time.Time, ev *custos.AuditEvent) (*custos.Device, error) {
	fromText := make([]string, len(from))
	for i, st := range from {
		fromText[i] = string(st)
	}
	var out *custos.Device
	err := s.tx(ctx, "update device status", func(tx pgx.Tx) error {
		d, err := scanDevice(tx.QueryRow(ctx, `UPDATE devices SET status = $1, level = $2, decided_at = $3, decided_by = $4
			WHERE org_id = $5 AND id = $6 AND status = ANY($7::text[])
			RETURNING `+deviceCols, string(to), string(level), micros(now), by, orgID, id, fromText))
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			var cur string
			err := tx.QueryRow(ctx, `SELECT status FROM devices WHERE org_id = $1 AND id = $2`, orgID, id).Scan(&cur)
			switch {
			case errors.Is(err, pgx.ErrNoRows):
				return custos.Errorf(custos.ENOTFOUND, "device %q not found", id)
			case err != nil:
				return err
			}
			return custos.Errorf(custos.ECONFLICT, "device %q is %s and cannot be set to %s", id, cur, to)
		case err != nil:
			return err
		}
		if err := appendEvents(ctx, tx, ev); err != nil {
			return err
		}
		out = d
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
