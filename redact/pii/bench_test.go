package pii_test

import (
	"strings"
	"testing"

	"github.com/custos-dev/custos/redact"
	"github.com/custos-dev/custos/redact/pii"
)

// benchChunk is realistic prompt text: Go code, a log excerpt, a stack
// trace and prose with a few emails and phone numbers.
const benchChunk = `package server

import (
	"context"
	"fmt"
	"net/http"
	"time"
)

// Handler serves /api/v1/users. Contact ops@example.com or call
// +1 (415) 555-2671 if it pages at 03:00.
func (s *Server) Handler(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	id := r.URL.Query().Get("id") // e.g. 1700000000123
	u, err := s.store.User(ctx, id)
	if err != nil {
		http.Error(w, fmt.Sprintf("user %s: %v", id, err), http.StatusNotFound)
		return
	}
	for i := 0; i < len(u.Roles); i++ {
		s.log.Printf("role[%d]=%q v%d.%d.%d", i, u.Roles[i], 1, 22, 3)
	}
}

2024-01-15T10:30:00.123Z INFO request from 10.0.3.17:52114 took 12.5ms status=200 bytes=5120
2024-01-15T10:30:01.456Z WARN upstream 93.184.216.34 slow (1532ms), retry 1/3 trace=4bf92f3577b34da6a3ce929d0e0e4736
goroutine 1 [running]:
main.main()
	/home/dev/src/server/main.go:42 +0x1d
Build: go1.22.3 linux/amd64, commit e83c5163316f89bfbde7d9ab23ca2e25604af290, version 1.4.2.
Hi team, please send the invoice to jane.doe@acme-corp.io (phone 212-555-0187). Order #10023, total $1,249.00.
`

func benchInput() []byte {
	var b strings.Builder
	for b.Len() < 8<<10 {
		b.WriteString(benchChunk)
	}
	return []byte(b.String()[:8<<10])
}

// BenchmarkDetectors runs every default detector over 8 KB of mixed text:
// Warm reuses the detectors, as the gateway does (the phone numbers'
// validation is cached), Cold builds new ones each time, so every phone
// candidate goes through libphonenumber.
func BenchmarkDetectors(b *testing.B) {
	src := benchInput()
	emit := func(redact.Finding) {}
	b.Run("Warm", func(b *testing.B) {
		ds := pii.Detectors(pii.DefaultConfig())
		b.SetBytes(int64(len(src)))
		b.ReportAllocs()
		for b.Loop() {
			for _, d := range ds {
				d.Detect(src, emit)
			}
		}
	})
	b.Run("Cold", func(b *testing.B) {
		b.SetBytes(int64(len(src)))
		b.ReportAllocs()
		for b.Loop() {
			for _, d := range pii.Detectors(pii.DefaultConfig()) {
				d.Detect(src, emit)
			}
		}
	})
}

// BenchmarkDetector runs each detector alone over the same text.
func BenchmarkDetector(b *testing.B) {
	src := benchInput()
	for _, k := range []redact.Kind{redact.KindEmail, redact.KindPhone, redact.KindCard, redact.KindIBAN, redact.KindSSN, redact.KindIP} {
		ds := pii.Detectors(only(k))
		b.Run(string(k), func(b *testing.B) {
			b.SetBytes(int64(len(src)))
			b.ReportAllocs()
			for b.Loop() {
				ds[0].Detect(src, func(redact.Finding) {})
			}
		})
	}
}
