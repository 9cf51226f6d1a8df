package migration_test

import (
	"testing"
	"testing/fstest"

	"github.com/custos-dev/custos/store/internal/migration"
)

func TestLoad(t *testing.T) {
	// Ensure migrations load in version order and bad names or duplicate
	// versions are refused.
	ms, err := migration.Load(fstest.MapFS{
		"m/0002_b.sql": {Data: []byte("B")},
		"m/0001_a.sql": {Data: []byte("A")},
	}, "m")
	if err != nil || len(ms) != 2 || ms[0].Version != 1 || ms[1].Title() != "b" || ms[0].SQL != "A" {
		t.Fatalf("ms=%+v err=%v", ms, err)
	}
	for _, bad := range []fstest.MapFS{
		{"m/x_a.sql": {}},
		{"m/0_a.sql": {}},
		{"m/0001_a.sql": {}, "m/1_b.sql": {}},
	} {
		if _, err := migration.Load(bad, "m"); err == nil {
			t.Errorf("accepted %v", bad)
		}
	}
}
