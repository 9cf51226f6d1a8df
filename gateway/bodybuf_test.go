package gateway

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/iotest"
)

// scratchReader is a body that reads in chunks of at most chunk bytes and,
// as io.Reader allows, scribbles over all it is offered first; it records
// the largest offer and every buffer it was given.
type scratchReader struct {
	r        io.Reader
	chunk    int
	maxOffer int
	offers   [][]byte
	fail     error // returned once the body is read, instead of io.EOF
}

func (s *scratchReader) Read(p []byte) (int, error) {
	s.offers = append(s.offers, p)
	s.maxOffer = max(s.maxOffer, len(p))
	for i := range p {
		p[i] = '#'
	}
	n, err := s.r.Read(p[:min(len(p), s.chunk)])
	if err == io.EOF && s.fail != nil {
		return n, s.fail
	}
	return n, err
}

// allZero reports whether every buffer offered to s is zero now.
func (s *scratchReader) allZero() bool {
	for _, p := range s.offers {
		for _, c := range p {
			if c != 0 {
				return false
			}
		}
	}
	return true
}

func TestReadBody(t *testing.T) {
	const limit = 1 << 20
	for _, tc := range []struct {
		name  string
		size  int
		n     int64 // announced length
		chunk int
	}{
		{"empty", 0, 0, 512},
		{"known", 8138, 8138, 1 << 20},
		{"known, small reads", 8138, 8138, 100},
		{"unknown", 8138, -1, 1 << 20},
		{"unknown, small reads", 30000, -1, 777},
		{"announced over the limit", 5000, limit + 1, 4096},
		{"larger than pooled", maxPooledBody + 1000, -1, 64 << 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := bytes.Repeat([]byte("custos body "), tc.size/12+1)[:tc.size]
			sr := &scratchReader{r: bytes.NewReader(want), chunk: tc.chunk}
			bb, err := readBody(sr, tc.n, limit)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(bb.b, want) {
				t.Fatalf("read %d bytes, not the %d sent", len(bb.b), len(want))
			}
			// A read is offered at most the body and one byte (known
			// length) or 4 KB past what is read: a pooled buffer larger
			// than the body is not written, nor cleared, beyond that.
			if bound := max(int(tc.n)+1, 4<<10); tc.n > limit || tc.n < 0 {
				if sr.maxOffer > 4<<10 {
					t.Errorf("a read was offered %d bytes, want at most 4 KB", sr.maxOffer)
				}
			} else if sr.maxOffer > bound {
				t.Errorf("a read was offered %d bytes, want at most %d", sr.maxOffer, bound)
			}
			bb.release()
			if tc.size <= maxPooledBody && !sr.allZero() {
				t.Error("the released buffer still holds what the reads wrote")
			}
		})
	}
}

func TestReadBodyReusesPooled(t *testing.T) {
	// A large body leaves a large buffer in the pool; a small one read
	// into it is offered, and so cleared, only what it needs.
	big := bytes.Repeat([]byte("x"), 100<<10)
	bb, err := readBody(bytes.NewReader(big), int64(len(big)), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	bb.release()
	for range 3 {
		sr := &scratchReader{r: strings.NewReader(`{"model":"m"}`), chunk: 1 << 20}
		bb, err := readBody(sr, 13, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		if string(bb.b) != `{"model":"m"}` {
			t.Fatalf("read %q", bb.b)
		}
		if sr.maxOffer > 14 {
			t.Fatalf("a 13-byte body was offered %d bytes", sr.maxOffer)
		}
		bb.release()
		if !sr.allZero() {
			t.Fatal("the released buffer still holds the body")
		}
	}
}

func TestReadBodyError(t *testing.T) {
	boom := errors.New("connection reset")
	sr := &scratchReader{r: strings.NewReader("ghp_partial-secret-body"), chunk: 5, fail: boom}
	bb, err := readBody(sr, -1, 1<<20)
	if !errors.Is(err, boom) || bb != nil {
		t.Fatalf("got %v, %v; want nil, %v", bb, err, boom)
	}
	if !sr.allZero() {
		t.Error("a failed read left the partial body in the pooled buffer")
	}
	if _, err := readBody(iotest.ErrReader(boom), 10, 1<<20); !errors.Is(err, boom) {
		t.Fatalf("got %v, want %v", err, boom)
	}
}

// sendForwarded posts f's buffer through client to url as the gateway's
// send does (a reader, GetBody and the client trace), reads the answer
// whole and returns its status, or the error of Do.
func sendForwarded(t *testing.T, client *http.Client, url string, f *forwarded) (int, error) {
	t.Helper()
	body := f.bb.b
	req, err := http.NewRequestWithContext(f.trace(context.Background()), http.MethodPost, url, f.reader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = int64(len(body))
	req.GetBody = f.getBody(body)
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode, nil
}

// newForwarded returns a forwarded holding n bytes of text, and the
// buffer's array, to see afterwards whether release cleared it.
func newForwarded(n int) (*forwarded, []byte) {
	bb := &bodyBuf{b: make([]byte, n)}
	for i := range bb.b {
		bb.b[i] = "secret "[i%7]
	}
	bb.hi = len(bb.b)
	return &forwarded{bb: bb}, bb.b
}

func zeroed(b []byte) bool { return !slices.ContainsFunc(b, func(c byte) bool { return c != 0 }) }

// TestForwardedRelease checks when the redacted copy of a request goes
// back to the pool: only when the transport said it wrote it, once and
// without error. The answer coming back is not enough: the write may go
// on after it, and a reused buffer would send the next request's text.
func TestForwardedRelease(t *testing.T) {
	// A client whose connections buffer 4 KB, so a write of a body as
	// large as the pool keeps goes on until the upstream reads it.
	const pooledBody = maxPooledBody
	dialer := &net.Dialer{}
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dialer.DialContext(ctx, network, addr)
		if err == nil {
			_ = c.(*net.TCPConn).SetWriteBuffer(4 << 10)
		}
		return c, err
	}}}
	t.Run("written once", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
		}))
		defer srv.Close()
		f, arr := newForwarded(8 << 10)
		for range 2 { // a new connection, then a reused one
			f.readers.Store(0)
			f.wrote.Store(0)
			if code, err := sendForwarded(t, srv.Client(), srv.URL, f); err != nil || code != http.StatusOK {
				t.Fatalf("got %d, %v", code, err)
			}
		}
		f.release()
		if !zeroed(arr) || f.bb != nil {
			t.Fatal("a body the transport reported written was not released")
		}
		f.release() // a second release does nothing
	})

	t.Run("answered before it was written", func(t *testing.T) {
		// The upstream sends its answer's headers at once and reads the
		// body only when told, over connections that buffer 4 KB: the
		// transport is still writing when Do returns.
		read := make(chan struct{})
		srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			rc := http.NewResponseController(w)
			_ = rc.EnableFullDuplex()
			w.Header().Set("Content-Length", "2")
			w.WriteHeader(http.StatusOK)
			_ = rc.Flush()
			<-read
			_, _ = io.Copy(io.Discard, r.Body)
			_, _ = w.Write([]byte("ok"))
		}))
		// Connections accepted with a 4 KB receive buffer, set before
		// they are (the window is advertised at the handshake).
		lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4<<10)
			})
			return errors.Join(err, serr)
		}}
		ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv.Listener = ln
		srv.Start()
		defer srv.Close()
		var once sync.Once
		letRead := func() { once.Do(func() { close(read) }) }
		defer letRead() // before Close, which waits for the handler
		f, arr := newForwarded(pooledBody)
		req, err := http.NewRequestWithContext(f.trace(context.Background()), http.MethodPost, srv.URL, f.reader(f.bb.b))
		if err != nil {
			t.Fatal(err)
		}
		req.GetBody = f.getBody(f.bb.b)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if f.wrote.Load() != 0 {
			t.Fatal("the transport reported the write done while the upstream was not reading")
		}
		f.release()
		letRead()
		if zeroed(arr) {
			t.Fatal("released a body the transport was still writing")
		}
		if b, err := io.ReadAll(resp.Body); err != nil || string(b) != "ok" {
			t.Fatalf("answer %q, %v", b, err)
		}
	})

	t.Run("sent twice", func(t *testing.T) {
		// A redirect makes the client send the body again through GetBody.
		var hits atomic.Int32
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			if hits.Add(1) == 1 {
				http.Redirect(w, r, "/again", http.StatusTemporaryRedirect)
			}
		}))
		defer srv.Close()
		f, arr := newForwarded(8 << 10)
		if code, err := sendForwarded(t, srv.Client(), srv.URL, f); err != nil || code != http.StatusOK {
			t.Fatalf("got %d, %v", code, err)
		}
		if hits.Load() != 2 || f.readers.Load() != 2 {
			t.Fatalf("%d requests, %d readers; want 2 and 2", hits.Load(), f.readers.Load())
		}
		f.release()
		if zeroed(arr) {
			t.Fatal("released a body the transport read twice")
		}
	})

	t.Run("write failed", func(t *testing.T) {
		// The upstream takes the request's headers and hangs up.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				_ = c.(*net.TCPConn).SetLinger(0) // a reset, not a clean close
				_, _ = c.Read(make([]byte, 1024))
				_ = c.Close()
			}
		}()
		f, arr := newForwarded(pooledBody)
		if _, err := sendForwarded(t, client, "http://"+ln.Addr().String(), f); err == nil {
			t.Fatal("a request to an upstream that hangs up succeeded")
		}
		f.release()
		if zeroed(arr) {
			t.Fatal("released a body whose write failed")
		}
	})

	t.Run("never sent", func(t *testing.T) {
		f, arr := newForwarded(100)
		f.release()
		if !zeroed(arr) {
			t.Fatal("a body no transport saw was not released")
		}
	})
}
