package tasks_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/custos-dev/custos"
	"github.com/custos-dev/custos/token"
)

// Ensure no token, and no token's hash, appears in any audit record, log
// line or error of the tasks service, through successes and refusals.
func TestNoTokenLeaks(t *testing.T) {
	te := mustTaskEnv(t)
	ctx := FromIP()
	var errs []error
	try := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}

	// Request keys: replayed, expired, foreign, malformed.
	rk := te.MustSession(t, te.Install)
	call := te.MustSpend(t, te.Install, rk)
	_, err := te.Service.SpendRequestKey(ctx, te.Install, rk)
	try(err)
	_, otherTok := te.MustInstall(t, "linear")
	_, err = te.Service.SpendRequestKey(ctx, te.Install, te.MustSession(t, otherTok))
	try(err)
	_, err = te.Service.SpendRequestKey(ctx, te.Install, rk[:20])
	try(err)
	bogus := token.New(token.PrefixRequestKey)
	te.saw(bogus)
	_, err = te.Service.SpendRequestKey(ctx, te.Install, bogus)
	try(err)

	// Launch codes: used, other pair, unknown.
	l, err := te.Service.CreateLaunchLink(ctx, call, custos.LaunchLinkInput{ProjectID: Project, TaskID: "PROJ-7"})
	if err != nil {
		t.Fatal(err)
	}
	te.saw(l.Code)
	_, err = te.Service.ExchangeLaunchCode(ctx, custos.LaunchExchangeInput{Code: l.Code, ProjectID: Project, TaskID: "PROJ-8"})
	try(err)
	g, err := te.Service.ExchangeLaunchCode(ctx, custos.LaunchExchangeInput{Code: l.Code, ProjectID: Project, TaskID: "PROJ-7"})
	if err != nil {
		t.Fatal(err)
	}
	te.saw(g.Permit)
	_, err = te.Service.ExchangeLaunchCode(ctx, custos.LaunchExchangeInput{Code: l.Code, ProjectID: Project, TaskID: "PROJ-7"})
	try(err)

	// Permits: foreign task, foreign run, foreign project, expired.
	a := te.MustPut(t, te.Permit, Task, te.Run.ID, "a.txt", "x")
	_, err = te.Service.CreateRun(ctx, g.Permit, Task)
	try(err)
	_, _, err = te.Service.GetArtifact(ctx, g.Permit, "PROJ-7", te.Run.ID, "a.txt")
	try(err)
	_, err = te.Service.PutIndexFiles(ctx, g.Permit, "PROJ-2", "main", []custos.IndexFile{{Path: "a", SHA256: hashA}})
	try(err)
	_, err = te.Service.CreateRun(ctx, g.Permit[:30], "PROJ-7")
	try(err)

	// A failing blob read (logged), a purge with an orphan (logged).
	if err := os.Remove(filepath.Join(te.BlobDir, "artifacts", te.OrgID, a.ID)); err != nil {
		t.Fatal(err)
	}
	_, _, err = te.Service.GetArtifact(ctx, te.Permit, Task, te.Run.ID, "a.txt")
	try(err)
	te.Clock.Add(custos.PermitTTL)
	_, err = te.Service.CreateRun(ctx, te.Permit, Task)
	try(err)
	if err := os.WriteFile(filepath.Join(te.BlobDir, "artifacts", te.OrgID, custos.NewID(custos.PrefixArtifact)), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	te.Clock.Set(te.Clock.Now().AddDate(10, 0, 0))
	if _, err := te.Service.Purge(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	if len(errs) < 12 {
		t.Fatalf("only %d refusals happened", len(errs))
	}

	var hay strings.Builder
	for _, orgEv := range te.Audit(t, te.OrgID) {
		b, _ := json.Marshal(orgEv)
		hay.Write(b)
	}
	hay.WriteString(te.Logs.String())
	for _, err := range errs {
		hay.WriteString(err.Error())
	}
	text := hay.String()
	if !strings.Contains(text, custos.ActionTaskDenied) || !strings.Contains(text, "orphan blob deleted") {
		t.Fatal("the haystack is missing the denials or the logs")
	}
	toks := te.Tokens()
	if len(toks) < 10 {
		t.Fatalf("only %d tokens seen", len(toks))
	}
	for _, tok := range toks {
		for _, needle := range []string{tok, tok[len(token.PrefixPermit):], tok[:len(tok)-5], token.Hash(tok)} {
			if strings.Contains(text, needle) {
				t.Fatalf("%q (of a %s token) leaked", needle, tok[:7])
			}
		}
	}
	if strings.Contains(text, "cst_") && token.Redact(text) != text {
		t.Fatal("something token-shaped leaked")
	}
}
