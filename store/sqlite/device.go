package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/custos-dev/custos"
	"github.com/custos-dev/custos/store/internal/column"
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
func insertDevice(w *wtx, d *custos.Device) error {
	if _, err := w.exec(`INSERT INTO devices (`+deviceCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		d.ID, d.OrgID, d.KeyID, d.Fingerprint, d.MachineUser, d.Hostname, d.Agent, d.IP, string(d.Status),
		string(d.Level), micros(d.CreatedAt), nullMicros(d.DecidedAt), d.DecidedBy); err != nil {
		return conflictOr(err, "insert device", "device %q already exists", d.Fingerprint)
	}
	return nil
}

// CreateDevice inserts d with ev. Returns ECONFLICT if (org, fingerprint) exists.
func (s *Store) CreateDevice(ctx context.Context, d *custos.Device, ev *custos.AuditEvent) error {
	return s.write(ctx, func(w *wtx) error {
		if err := insertDevice(w, d); err != nil {
			return err
		}
		return w.appendEvent(ev)
	})
}

// FindDevice returns the org's device with fingerprint. Returns ENOTFOUND.
func (s *Store) FindDevice(ctx context.Context, orgID, fingerprint string) (*custos.Device, error) {
	d, err := scanDevice(s.rqueryRow(ctx, `SELECT `+deviceCols+` FROM devices WHERE org_id = ? AND fingerprint = ?`, orgID, fingerprint))
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, custos.Errorf(custos.ENOTFOUND, "device %q not found", fingerprint)
	case err != nil:
		return nil, fmt.Errorf("find device: %w", err)
	}
	return d, nil
}

// GetDevice returns device id of org. Returns ENOTFOUND.
func (s *Store) GetDevice(ctx context.Context, orgID, id string) (*custos.Device, error) {
	d, err := scanDevice(s.rqueryRow(ctx, `SELECT `+deviceCols+` FROM devices WHERE org_id = ? AND id = ?`, orgID, id))
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, custos.Errorf(custos.ENOTFOUND, "device %q not found", id)
	case err != nil:
		return nil, fmt.Errorf("get device: %w", err)
	}
	return d, nil
}

// ListDevices returns the org's devices, oldest first; status "" means all.
func (s *Store) ListDevices(ctx context.Context, orgID string, status custos.DeviceStatus) ([]*custos.Device, error) {
	rows, err := s.rquery(ctx, `SELECT `+deviceCols+` FROM devices WHERE org_id = ? AND (? = '' OR status = ?)
		ORDER BY created_at, rowid`, orgID, string(status), string(status))
	if err != nil {
		return nil, fmt.Errorf("list devices: %w", err)
	}
	defer rows.Close()
	devs := []*custos.Device{}
	for rows.Next() {
		d, err := scanDevice(rows)
		if err != nil {
			return nil, fmt.Errorf("list devices: %w", err)
		}
		devs = append(devs, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list devices: %w", err)
	}
	return devs, nil
}

// UpdateDeviceStatus atomically moves device id to status to with level,
// DecidedAt=now and DecidedBy=by, only if its status is in from, with ev.
// Returns the updated device, ENOTFOUND, or ECONFLICT if its status is not in
// from.
func (s *Store) UpdateDeviceStatus(ctx context.Context, orgID, id string, from []custos.DeviceStatus, to custos.DeviceStatus, level custos.Level, by string, now time.Time, ev *custos.AuditEvent) (*custos.Device, error) {
	fromJSON, err := column.JSONText(from)
	if err != nil {
		return nil, err
	}
	var out *custos.Device
	err = s.write(ctx, func(w *wtx) error {
		d, err := scanDevice(w.queryRow(`UPDATE devices SET status = ?, level = ?, decided_at = ?, decided_by = ?
			WHERE org_id = ? AND id = ? AND status IN (SELECT value FROM json_each(?))
			RETURNING `+deviceCols, string(to), string(level), micros(now), by, orgID, id, fromJSON))
		switch {
		case errors.Is(err, sql.ErrNoRows):
			var cur string
			err := w.queryRow(`SELECT status FROM devices WHERE org_id = ? AND id = ?`, orgID, id).Scan(&cur)
			switch {
			case errors.Is(err, sql.ErrNoRows):
				return custos.Errorf(custos.ENOTFOUND, "device %q not found", id)
			case err != nil:
				return fmt.Errorf("read device status: %w", err)
			}
			return custos.Errorf(custos.ECONFLICT, "device %q is %s and cannot be set to %s", id, cur, to)
		case err != nil:
			return fmt.Errorf("update device status: %w", err)
		}
		if err := w.appendEvent(ev); err != nil {
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
