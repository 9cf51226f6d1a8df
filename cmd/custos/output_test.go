package main

import (
	"strings"
	"testing"
	"time"
)

func TestCell(t *testing.T) {
	// Ensure table cells cannot carry control characters, and empty is "-".
	for in, want := range map[string]string{"": "-", "ok": "ok", "a\tb": "a?b", "\x1b[31mred": "?[31mred", "x\ny": "x?y", "\u009bz": "?z", "héllo": "héllo"} {
		if got := cell(in); got != want {
			t.Errorf("cell(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestWriteJSONList(t *testing.T) {
	// Ensure a nil list prints [] and HTML characters are not escaped.
	var b strings.Builder
	if err := writeJSONList[string](&b, nil); err != nil || b.String() != "[]\n" {
		t.Fatalf("%q %v", b.String(), err)
	}
	b.Reset()
	_ = writeJSONList(&b, []string{"<a&b>"})
	if !strings.Contains(b.String(), `"<a&b>"`) {
		t.Fatalf("%q", b.String())
	}
}

func TestFmtTime(t *testing.T) {
	// Ensure times print in UTC, RFC 3339, and zero or nil as "-".
	loc := time.FixedZone("X", 3600)
	if got := fmtTime(time.Date(2026, 1, 2, 4, 5, 6, 7, loc)); got != "2026-01-02T03:05:06Z" {
		t.Fatalf("got %q", got)
	}
	if fmtTime(time.Time{}) != "-" || fmtTimePtr(nil) != "-" {
		t.Fatal("zero time")
	}
}
