package main

import (
	"flag"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"
)

// testFlagSet returns a flag set with a string, a bool, a repeatable tag
// flag and a repeatable names flag.
func testFlagSet() (*flag.FlagSet, *string, *bool, tagsValue, *namesValue) {
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	project := fs.String("project", "default", "")
	asJSON := fs.Bool("json", false, "")
	tags := tagsValue{}
	fs.Var(tags, "tag", "")
	var only namesValue
	fs.Var(&only, "only", "")
	return fs, project, asJSON, tags, &only
}

func TestParseArgs(t *testing.T) {
	for _, tt := range []struct {
		name    string
		args    []string
		pos     []string
		project string
		json    bool
		tags    map[string]string
		only    []string
	}{
		{"Empty", nil, []string{}, "default", false, map[string]string{}, nil},
		{"FlagsFirst", []string{"--project", "p", "NAME"}, []string{"NAME"}, "p", false, map[string]string{}, nil},
		{"FlagsAfter", []string{"NAME", "--tag", "env=prod", "--json"}, []string{"NAME"}, "default", true, map[string]string{"env": "prod"}, nil},
		{"Interspersed", []string{"A", "--project=p", "B", "-json", "C"}, []string{"A", "B", "C"}, "p", true, map[string]string{}, nil},
		{"Repeated", []string{"--tag", "env=prod", "N", "--tag", "team=web", "--only", "A", "--only", "B", "--only", "A"},
			[]string{"N"}, "default", false, map[string]string{"env": "prod", "team": "web"}, []string{"A", "B"}},
		{"Terminator", []string{"--project", "p", "--", "--json", "-x", "CMD"}, []string{"--json", "-x", "CMD"}, "p", false, map[string]string{}, nil},
		{"TerminatorAfterPositional", []string{"A", "--", "--project", "q"}, []string{"A", "--project", "q"}, "default", false, map[string]string{}, nil},
		{"DashDashAsValue", []string{"--project", "--", "A", "--json"}, []string{"A"}, "--", true, map[string]string{}, nil},
		{"DashDashAfterValue", []string{"--project", "p", "--", "--json"}, []string{"--json"}, "p", false, map[string]string{}, nil},
		{"BoolThenTerminator", []string{"--json", "--", "--project"}, []string{"--project"}, "default", true, map[string]string{}, nil},
		{"SingleDashIsPositional", []string{"-", "--json"}, []string{"-"}, "default", true, map[string]string{}, nil},
		{"EmptyArg", []string{"", "--json"}, []string{""}, "default", true, map[string]string{}, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			// Ensure flags and positionals are separated as documented.
			fs, project, asJSON, tags, only := testFlagSet()
			pos, err := parseArgs(fs, tt.args)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(pos, tt.pos) {
				t.Errorf("positional %q, want %q", pos, tt.pos)
			}
			if *project != tt.project || *asJSON != tt.json {
				t.Errorf("project %q json %v, want %q %v", *project, *asJSON, tt.project, tt.json)
			}
			if !reflect.DeepEqual(map[string]string(tags), tt.tags) {
				t.Errorf("tags %v, want %v", tags, tt.tags)
			}
			if !reflect.DeepEqual([]string(*only), tt.only) {
				t.Errorf("only %v, want %v", *only, tt.only)
			}
		})
	}
}

func TestParseArgsErrors(t *testing.T) {
	// Ensure bad flags are errors, and -h is flag.ErrHelp wherever it is.
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"A", "--nosuch"}, "not defined"},
		{[]string{"A", "--project"}, "needs an argument"},
		{[]string{"--tag", "novalue"}, "want key=value"},
		{[]string{"--tag", "Env=x"}, "invalid tag key"},
		{[]string{"--tag", "env=a b"}, "invalid tag value"},
		{[]string{"--tag", "env=a", "--tag", "env=b"}, "given twice"},
		{[]string{"--only", "not-a-name"}, "invalid secret name"},
		{[]string{"--json=maybe"}, "invalid boolean"},
		{[]string{"A", "B", "-h"}, "help requested"},
	} {
		fs, _, _, _, _ := testFlagSet()
		_, err := parseArgs(fs, tt.args)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("parseArgs(%q) = %v, want error with %q", tt.args, err, tt.want)
		}
	}
	// A tag given twice with the same value is fine.
	fs, _, _, tags, _ := testFlagSet()
	if _, err := parseArgs(fs, []string{"--tag", "env=a", "--tag", "env=a"}); err != nil || tags["env"] != "a" {
		t.Fatalf("repeated identical tag: %v %v", err, tags)
	}
}

func TestDurationValue(t *testing.T) {
	// Ensure durations accept Go syntax and days, and reject negatives.
	for in, want := range map[string]time.Duration{"30m": 30 * time.Minute, "72h": 72 * time.Hour, "7d": 7 * 24 * time.Hour, "1h30m": 90 * time.Minute} {
		var d durationValue
		if err := d.Set(in); err != nil || time.Duration(d) != want {
			t.Errorf("Set(%q) = %v, %v", in, time.Duration(d), err)
		}
	}
	for _, in := range []string{"forever", "-1h", "1y", "d"} {
		var d durationValue
		if err := d.Set(in); err == nil {
			t.Errorf("Set(%q) accepted", in)
		}
	}
	for d, want := range map[time.Duration]string{0: "", 48 * time.Hour: "48h", 30 * time.Minute: "30m", 90 * time.Minute: "1h30m", 90 * time.Second: "1m30s"} {
		if got := fmtDuration(d); got != want {
			t.Errorf("fmtDuration(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestFmtTags(t *testing.T) {
	// Ensure tags print sorted, and empty prints the placeholder.
	if got := fmtTags(map[string]string{"team": "web", "env": "prod"}, "-"); got != "env=prod,team=web" {
		t.Fatalf("got %q", got)
	}
	if got := fmtTags(nil, "-"); got != "-" {
		t.Fatalf("got %q", got)
	}
}
