package custos

import (
	"context"
	"time"
)

// DeviceStatus is where a device stands.
type DeviceStatus string

// Device statuses. A new device is pending and gets no value until an owner
// or admin approves it.
const (
	DevicePending  DeviceStatus = "pending"
	DeviceApproved DeviceStatus = "approved"
	DeviceDenied   DeviceStatus = "denied"
	DeviceRevoked  DeviceStatus = "revoked"
)

// Level is what an approved device may do with secrets.
type Level string

// Levels, each including the ones before it.
const (
	LevelRead      Level = "read"       // list, read values
	LevelReadWrite Level = "read-write" // + create, update
	LevelFull      Level = "full"       // + delete
)

// Valid reports whether l is a known level.
func (l Level) Valid() bool {
	return l == LevelRead || l == LevelReadWrite || l == LevelFull
}

// Allows reports whether a device at level l may act at level want.
func (l Level) Allows(want Level) bool {
	rank := map[Level]int{LevelRead: 1, LevelReadWrite: 2, LevelFull: 3}
	return rank[l] > 0 && rank[l] >= rank[want]
}

// Device is one identity an API key is used from:
// user:hostname:agent:keyId:ip.
type Device struct {
	ID          string       `json:"id"`
	OrgID       string       `json:"org_id"`
	KeyID       string       `json:"key_id"`
	Fingerprint string       `json:"fingerprint"`
	MachineUser string       `json:"machine_user"`
	Hostname    string       `json:"hostname"`
	Agent       string       `json:"agent"`
	IP          string       `json:"ip"`
	Status      DeviceStatus `json:"status"`
	Level       Level        `json:"level,omitempty"`
	CreatedAt   time.Time    `json:"created_at"`
	DecidedAt   *time.Time   `json:"decided_at,omitempty"`
	DecidedBy   string       `json:"decided_by,omitempty"` // key id of the admin who decided
}

// DeviceService lets owners and admins decide on devices.
type DeviceService interface {
	// ListDevices lists the org's devices; status "" means all.
	ListDevices(ctx context.Context, status DeviceStatus) ([]*Device, error)
	// ApproveDevice approves a pending, denied or approved device at level.
	// Returns ENOTFOUND, EINVALID or ECONFLICT (revoked devices stay revoked).
	ApproveDevice(ctx context.Context, id string, level Level) (*Device, error)
	// DenyDevice denies a pending device. Returns ENOTFOUND or ECONFLICT.
	DenyDevice(ctx context.Context, id string) (*Device, error)
	// RevokeDevice revokes a device for good. Returns ENOTFOUND or ECONFLICT.
	RevokeDevice(ctx context.Context, id string) (*Device, error)
}

// DeviceStore persists devices.
type DeviceStore interface {
	// CreateDevice inserts d with ev. Returns ECONFLICT if (org, fingerprint) exists.
	CreateDevice(ctx context.Context, d *Device, ev *AuditEvent) error
	// FindDevice returns the org's device with fingerprint. Returns ENOTFOUND.
	FindDevice(ctx context.Context, orgID, fingerprint string) (*Device, error)
	// GetDevice returns device id of org. Returns ENOTFOUND.
	GetDevice(ctx context.Context, orgID, id string) (*Device, error)
	// ListDevices returns the org's devices, oldest first; status "" means all.
	ListDevices(ctx context.Context, orgID string, status DeviceStatus) ([]*Device, error)
	// UpdateDeviceStatus atomically moves device id to status `to` with level,
	// DecidedAt=now and DecidedBy=by, only if its current status is in from.
	// Returns the updated device, ENOTFOUND, or ECONFLICT if its status is not
	// in from.
	UpdateDeviceStatus(ctx context.Context, orgID, id string, from []DeviceStatus, to DeviceStatus, level Level, by string, now time.Time, ev *AuditEvent) (*Device, error)
}
