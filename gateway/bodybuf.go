package gateway

import (
	"io"
	"slices"
	"sync"
)

// The body a caller sends is read whole, parsed and redacted into a new
// copy (scrubBody), and then not read again: the buffer it was read into
// can serve the next request. Pooling it removes about a quarter of what
// a request allocates, and with it as many of the collector's cycles,
// whose mark phase takes a large share of a small machine's CPU while it
// lasts.
//
// Only the caller's body is pooled. The redacted copy goes to net/http's
// transport, which may still be writing it after the provider's answer
// came back; a buffer given to the next request while that write goes on
// would send that request's text to this request's provider. The
// transport would say when it is done only by closing a body it does not
// know, and for such a body it sends the headers in a packet of their
// own and copies the body through a buffer of its own — costing more than
// the pooling saves.

// maxPooledBody is the largest buffer kept for reuse; larger bodies are
// rare enough to allocate.
const maxPooledBody = 256 << 10

// bodyBuf holds a request body read by readBody, until release.
type bodyBuf struct {
	b  []byte
	hi int // b[:hi] has been handed to a Read: what release clears
}

var bodyPool = sync.Pool{New: func() any { return new(bodyBuf) }}

// release returns the buffer to the pool, zeroed where a read may have
// written, so no request's text outlives its request there. The caller
// must not use bb or b afterwards.
func (bb *bodyBuf) release() {
	if cap(bb.b) > maxPooledBody {
		return
	}
	clear(bb.b[:bb.hi])
	bb.b, bb.hi = bb.b[:0], 0
	bodyPool.Put(bb)
}

// readBody reads a request body of at most limit bytes into a pooled
// buffer (the reader enforces the limit; limit only bounds the length
// announced in n, -1 when unknown). On error nothing is returned and the
// buffer is back in the pool.
func readBody(body io.Reader, n, limit int64) (*bodyBuf, error) {
	step := 4 << 10 // room offered to each read
	if n > 0 && n <= limit {
		step = int(n) + 1 // the body, and room for the read that sees the end
	}
	bb := bodyPool.Get().(*bodyBuf)
	b := bb.b[:0]
	for {
		if len(b) == cap(b) {
			// A larger array; the old one is cleared like a released one.
			nb := slices.Grow(b, step)
			clear(b[:bb.hi])
			b, bb.hi = nb, len(b)
		}
		// A read may use all it is offered as scratch space, so it is
		// offered no more than step beyond what is read: a large pooled
		// buffer is then not cleared whole for a small body.
		end := min(cap(b), len(b)+step)
		bb.hi = max(bb.hi, end)
		m, err := body.Read(b[len(b):end])
		b = b[:len(b)+m]
		if err == io.EOF {
			bb.b = b
			return bb, nil
		}
		if err != nil {
			bb.b = b
			bb.release()
			return nil, err
		}
	}
}
