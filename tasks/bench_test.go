package tasks_test

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/custos-dev/custos"
)

// BenchmarkLaunch measures a tracker's launch and a developer's exchange:
// spend a request key (one atomic statement, the next key inserted), mint a
// launch code, exchange it for a permit — on SQLite, audit records durable.
//
//	go test -run '^$' -bench . ./tasks
func BenchmarkLaunch(b *testing.B) {
	e := MustOpenEnv(b)
	_, it := e.MustInstall(b, "bench")
	rk := e.MustSession(b, it)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		call, err := e.Service.SpendRequestKey(FromIP(), it, rk)
		if err != nil {
			b.Fatal(err)
		}
		rk = call.Next.RequestKey
		task := fmt.Sprintf("T-%d", i)
		i++
		l, err := e.Service.CreateLaunchLink(FromIP(), call, custos.LaunchLinkInput{ProjectID: "PROJ", TaskID: task})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := e.Service.ExchangeLaunchCode(FromIP(), custos.LaunchExchangeInput{Code: l.Code, ProjectID: "PROJ", TaskID: task}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkArtifact measures an artifact's upload (seal with a fresh DEK,
// blob write, row and audit record) and download (row, blob read, open,
// SHA-256 check, audit record) through a file:// bucket.
func BenchmarkArtifact(b *testing.B) {
	for _, size := range []int{4 << 10, 256 << 10, 4 << 20} {
		body := bytes.Repeat([]byte("func main() { println(\"x\") }\n"), size/29+1)[:size]
		b.Run(fmt.Sprintf("put/%dKiB", size>>10), func(b *testing.B) {
			e := MustOpenEnv(b)
			_, it := e.MustInstall(b, "bench")
			_, pm := e.MustPermit(b, it, "PROJ", "T-1")
			run := e.MustRun(b, pm, "T-1")
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				// One name: each put replaces the last, so the run limit never binds.
				if _, err := e.Service.PutArtifact(FromIP(), pm, "T-1", run.ID, "src/main.go", "source", bytes.NewReader(body)); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("get/%dKiB", size>>10), func(b *testing.B) {
			e := MustOpenEnv(b)
			_, it := e.MustInstall(b, "bench")
			_, pm := e.MustPermit(b, it, "PROJ", "T-1")
			run := e.MustRun(b, pm, "T-1")
			if _, err := e.Service.PutArtifact(FromIP(), pm, "T-1", run.ID, "src/main.go", "source", bytes.NewReader(body)); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				if _, got, err := e.Service.GetArtifact(FromIP(), pm, "T-1", run.ID, "src/main.go"); err != nil || len(got) != size {
					b.Fatal(len(got), err)
				}
			}
		})
	}
}
