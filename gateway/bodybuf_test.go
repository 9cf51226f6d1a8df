package gateway

import (
	"bytes"
	"errors"
	"io"
	"strings"
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
