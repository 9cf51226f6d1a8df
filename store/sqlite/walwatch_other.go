//go:build !unix

package sqlite

import "errors"

// walWatch is not available here: CacheEpoch queries every time.
type walWatch struct{}

type walHeader struct{}

func openWALWatch(string) (*walWatch, error) {
	return nil, errors.New("no shared-memory watch on this platform")
}

func (*walWatch) header() (walHeader, bool)      { return walHeader{}, false }
func (*walWatch) cached(walHeader) (int64, bool) { return 0, false }
func (*walWatch) remember(walHeader, int64)      {}
func (*walWatch) close() error                   { return nil }
