package gateway

import (
	"bytes"
	"context"
	"io"
	"net/http/httptrace"
	"slices"
	"sync"
	"sync/atomic"
)

// The body a caller sends is read whole, parsed and redacted into a new
// copy (scrubBody), and then not read again: the buffer it was read into
// can serve the next request. Pooling it removes about a quarter of what
// a request allocates, and with it as many of the collector's cycles,
// whose mark phase takes a large share of a small machine's CPU while it
// lasts.
//
// The redacted copy is pooled too, but given back only once net/http's
// transport has said it finished writing it: the transport may still be
// writing it after the provider's answer came back, and a buffer given to
// the next request while that write goes on would send that request's
// text to this request's provider. The transport says so through
// httptrace's WroteRequest, called when the request and its body are
// written; a body it may have read more than once (a retry, a redirect, a
// fallback to another provider), or whose write failed, is left to the
// collector instead (see forwarded).

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

// forwarded is the redacted copy of a request, in a pooled buffer, with
// what net/http's transport has reported about writing it. The transport
// gets a reader of it for each attempt (reader) and may ask for another
// to retry (getBody); each finished write is counted by the client trace
// of the attempt's context (trace). release gives the buffer back only if
// there was at most one reader and its write finished without error: then
// nothing can still be reading it. Everything else — a write that has not
// reported yet, a failed one, a retry or a fallback — leaves the buffer to
// the collector.
type forwarded struct {
	bb      *bodyBuf
	readers atomic.Int32 // readers handed to the transport
	wrote   atomic.Int32 // writes the transport reported finished without error
}

// reader returns a reader of b (the buffer's bytes, or a slice of them)
// for one attempt.
func (f *forwarded) reader(b []byte) io.Reader {
	f.readers.Add(1)
	return bytes.NewReader(b)
}

// getBody returns the GetBody of an attempt's request sending b: the
// transport calls it to send the body again (a retry, a redirect).
func (f *forwarded) getBody(b []byte) func() (io.ReadCloser, error) {
	return func() (io.ReadCloser, error) {
		return io.NopCloser(f.reader(b)), nil
	}
}

// trace returns ctx with a client trace counting the attempt's writes.
func (f *forwarded) trace(ctx context.Context) context.Context {
	return httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		WroteRequest: func(info httptrace.WroteRequestInfo) {
			if info.Err == nil {
				f.wrote.Add(1)
			}
		},
	})
}

// release gives the buffer back to the pool if the transport is proven
// done with it, and forgets it either way. It is called once no attempt
// can start any more (every Do has returned).
func (f *forwarded) release() {
	bb := f.bb
	if bb == nil {
		return
	}
	f.bb = nil
	if n := f.readers.Load(); n > 1 || f.wrote.Load() != n {
		return // the transport may still read it, or read it twice
	}
	bb.release()
}
