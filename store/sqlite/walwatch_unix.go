//go:build unix

package sqlite

import (
	"fmt"
	"os"
	"sync/atomic"
	"syscall"
	"unsafe"
)

// walWatch maps the WAL-index header of the database: the first 96 bytes
// of its -shm file are two copies of a 48-byte header that every commit,
// by any connection of any process, rewrites (a transaction counter, the
// last frame, the salts and checksums; https://sqlite.org/walformat.html).
// While the header is unchanged nothing was committed, so CacheEpoch can
// answer from the epoch it read last without a query.
//
// The -shm file lives as long as some connection has the database open;
// the store's writer connection keeps it open (and holds its shared lock
// on the database file in WAL mode) until Close, so the mapping never
// outlives the file it shows.
type walWatch struct {
	mem  []byte
	last atomic.Pointer[walSeen]
}

// walHeader is the two copies of the WAL-index header, as 32-bit words.
type walHeader [24]uint32

// walSeen is an epoch read after the header was hdr.
type walSeen struct {
	hdr   walHeader
	epoch int64
}

// openWALWatch maps the header of the -shm file at path.
func openWALWatch(path string) (*walWatch, error) {
	f, err := os.Open(path) // #nosec G304 -- the database's own -shm file
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	size := os.Getpagesize()
	if st.Size() < int64(size) {
		return nil, fmt.Errorf("%s: %d bytes, not an initialized WAL index", path, st.Size())
	}
	mem, err := syscall.Mmap(int(f.Fd()), 0, size, syscall.PROT_READ, syscall.MAP_SHARED) // #nosec G115 -- a file descriptor fits an int
	if err != nil {
		return nil, err
	}
	return &walWatch{mem: mem}, nil
}

// header reads the header and reports whether its two copies agree (they
// differ while a commit is writing them).
func (w *walWatch) header() (h walHeader, ok bool) {
	for i := range h {
		// #nosec G103 -- an aligned 32-bit word of the mapping, read atomically as SQLite writes it
		h[i] = atomic.LoadUint32((*uint32)(unsafe.Pointer(&w.mem[4*i])))
	}
	return h, [12]uint32(h[:12]) == [12]uint32(h[12:])
}

// cached returns the epoch read last if the header is still h.
func (w *walWatch) cached(h walHeader) (int64, bool) {
	if s := w.last.Load(); s != nil && s.hdr == h {
		return s.epoch, true
	}
	return 0, false
}

// remember records epoch, read by a query that began after the header
// was h.
func (w *walWatch) remember(h walHeader, epoch int64) {
	w.last.Store(&walSeen{hdr: h, epoch: epoch})
}

func (w *walWatch) close() error { return syscall.Munmap(w.mem) }
