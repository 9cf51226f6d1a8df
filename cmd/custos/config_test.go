package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeFile writes content to dir/name with mode perm.
func writeFile(t *testing.T, dir, name, content string, perm os.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), perm); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, perm); err != nil { // WriteFile's mode is masked by the umask
		t.Fatal(err)
	}
	return p
}

func mcpJSON(key, url string) string {
	s := `{"mcpServers":{"other":{"command":"x","args":["a"]},"custos":{"command":"custos","env":{"CUSTOS_API_KEY":"` + key + `"`
	if url != "" {
		s += `,"CUSTOS_URL":"` + url + `"`
	}
	return s + `}}}}`
}

func TestLoadConfig(t *testing.T) {
	t.Run("Order", func(t *testing.T) {
		// Ensure the key is taken from the first of: CUSTOS_API_KEY,
		// CUSTOS_API_KEY_FILE, .custosrc in Dir, .custosrc in Home, .mcp.json
		// in Dir, .mcp.json in Home.
		tc := newTestCLI(t)
		keyFile := writeFile(t, t.TempDir(), "key", "  k-file\n", 0o600)
		writeFile(t, tc.Home, ".mcp.json", mcpJSON("k-mcp-home", ""), 0o644)
		steps := []struct {
			add  func()
			want string
		}{
			{func() {}, "k-mcp-home"},
			{func() { writeFile(t, tc.Dir, ".mcp.json", mcpJSON("k-mcp-dir", ""), 0o644) }, "k-mcp-dir"},
			{func() { writeFile(t, tc.Home, ".custosrc", "CUSTOS_API_KEY=k-rc-home\n", 0o600) }, "k-rc-home"},
			{func() { writeFile(t, tc.Dir, ".custosrc", "# mine\nexport CUSTOS_API_KEY='k-rc-dir'\n", 0o600) }, "k-rc-dir"},
			{func() { tc.env["CUSTOS_API_KEY_FILE"] = keyFile }, "k-file"},
			{func() { tc.env["CUSTOS_API_KEY"] = "k-env" }, "k-env"},
		}
		for i, s := range steps {
			s.add()
			cfg, err := tc.loadConfig()
			if err != nil {
				t.Fatalf("step %d: %v", i, err)
			}
			if cfg.Key != s.want {
				t.Fatalf("step %d: key %q, want %q", i, cfg.Key, s.want)
			}
			if cfg.URL != defaultURL {
				t.Fatalf("step %d: url %q", i, cfg.URL)
			}
		}
	})
	t.Run("URL", func(t *testing.T) {
		// Ensure CUSTOS_URL from the environment wins, else the URL of the file
		// that gave the key, never one from another file.
		tc := newTestCLI(t)
		writeFile(t, tc.Dir, ".custosrc", "CUSTOS_URL=https://dir.example\n", 0o600) // no key: skipped
		writeFile(t, tc.Home, ".custosrc", "CUSTOS_API_KEY=k\nCUSTOS_URL=https://home.example:8443\n", 0o600)
		cfg, err := tc.loadConfig()
		if err != nil || cfg.URL != "https://home.example:8443" || cfg.Key != "k" {
			t.Fatalf("%+v %v", cfg, err)
		}
		tc.env["CUSTOS_URL"] = "http://env.example:1"
		if cfg, err := tc.loadConfig(); err != nil || cfg.URL != "http://env.example:1" {
			t.Fatalf("%+v %v", cfg, err)
		}
		tc.env["CUSTOS_URL"] = "ftp://x"
		if _, err := tc.loadConfig(); err == nil || !strings.Contains(err.Error(), "invalid server URL") {
			t.Fatalf("bad URL: %v", err)
		}
		tc2 := newTestCLI(t)
		writeFile(t, tc2.Dir, ".mcp.json", mcpJSON("k", "http://mcp.example:9"), 0o600)
		if cfg, err := tc2.loadConfig(); err != nil || cfg.URL != "http://mcp.example:9" {
			t.Fatalf("%+v %v", cfg, err)
		}
	})
	t.Run("NoKey", func(t *testing.T) {
		// Ensure no key explains the four places and the owner key file.
		tc := newTestCLI(t)
		_, err := tc.loadConfig()
		if err == nil {
			t.Fatal("no error")
		}
		for _, want := range []string{"CUSTOS_API_KEY", "CUSTOS_API_KEY_FILE", ".custosrc", ".mcp.json", "custos-data/owner.key", "export CUSTOS_API_KEY=$(cat custos-data/owner.key)"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("message lacks %q: %s", want, err)
			}
		}
		tc.services = nil
		if code := tc.run("secret", "list"); code != 1 || !strings.Contains(tc.err.String(), "no API key found") {
			t.Fatalf("exit %d: %s", code, tc.err.String())
		}
	})
	t.Run("CustosrcMode", func(t *testing.T) {
		// Ensure a .custosrc others can read or write is refused with chmod advice.
		for _, perm := range []os.FileMode{0o644, 0o640, 0o604, 0o620} {
			tc := newTestCLI(t)
			p := writeFile(t, tc.Dir, ".custosrc", "CUSTOS_API_KEY=k\n", perm)
			_, err := tc.loadConfig()
			if err == nil || !strings.Contains(err.Error(), "chmod 600 "+p) {
				t.Errorf("mode %o: %v", perm, err)
			}
		}
		tc := newTestCLI(t)
		writeFile(t, tc.Dir, ".custosrc", "CUSTOS_API_KEY=k\n", 0o400)
		if cfg, err := tc.loadConfig(); err != nil || cfg.Key != "k" {
			t.Fatalf("mode 0400: %+v %v", cfg, err)
		}
	})
	t.Run("CustosrcSyntax", func(t *testing.T) {
		// Ensure a malformed .custosrc names the file and line.
		tc := newTestCLI(t)
		writeFile(t, tc.Dir, ".custosrc", "# ok\nCUSTOS_API_KEY=\"unterminated\n", 0o600)
		if _, err := tc.loadConfig(); err == nil || !strings.Contains(err.Error(), ".custosrc: line 2") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("KeyFile", func(t *testing.T) {
		// Ensure CUSTOS_API_KEY_FILE is read relative to Dir, and an empty or
		// missing file is an error.
		tc := newTestCLI(t)
		writeFile(t, tc.Dir, "owner.key", "cst_ak_x\n", 0o600)
		tc.env["CUSTOS_API_KEY_FILE"] = "owner.key"
		if cfg, err := tc.loadConfig(); err != nil || cfg.Key != "cst_ak_x" {
			t.Fatalf("%+v %v", cfg, err)
		}
		writeFile(t, tc.Dir, "empty.key", "\n", 0o600)
		tc.env["CUSTOS_API_KEY_FILE"] = "empty.key"
		if _, err := tc.loadConfig(); err == nil || !strings.Contains(err.Error(), "empty") {
			t.Fatalf("empty file: %v", err)
		}
		tc.env["CUSTOS_API_KEY_FILE"] = "missing.key"
		if _, err := tc.loadConfig(); err == nil || !strings.Contains(err.Error(), "CUSTOS_API_KEY_FILE") {
			t.Fatalf("missing file: %v", err)
		}
	})
	t.Run("BadKey", func(t *testing.T) {
		// Ensure a key with spaces or control characters is refused without
		// printing it.
		tc := newTestCLI(t)
		tc.env["CUSTOS_API_KEY"] = "cst_ak_a b"
		_, err := tc.loadConfig()
		if err == nil || strings.Contains(err.Error(), "cst_ak_a") {
			t.Fatalf("got %v", err)
		}
	})
}

func TestReadMCPJSON(t *testing.T) {
	for _, tt := range []struct {
		name, content, key, err string
	}{
		{"OK", mcpJSON("k1", ""), "k1", ""},
		{"NoCustosServer", `{"mcpServers":{"other":{"env":{"CUSTOS_API_KEY":"x"}}}}`, "", ""},
		{"NoKey", `{"mcpServers":{"custos":{"command":"custos"}}}`, "", ""},
		{"NoServers", `{}`, "", ""},
		{"Malformed", "{\n  \"mcpServers\": {\n    \"custos\": ,\n}", "", "not valid JSON: line 3"},
		{"Truncated", `{"mcpServers":`, "", "not valid JSON"},
		{"TopLevelArray", `[]`, "", "top level must be an object"},
		{"ServersNotObject", `{"mcpServers":[1]}`, "", "mcpServers must be an object"},
		{"CustosNotObject", `{"mcpServers":{"custos":"x"}}`, "", "mcpServers.custos must be an object"},
		{"KeyNotString", `{"mcpServers":{"custos":{"env":{"CUSTOS_API_KEY":42}}}}`, "", "env.CUSTOS_API_KEY must be a string"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			// Ensure .mcp.json is read, skipped or rejected with a clear message.
			p := writeFile(t, t.TempDir(), ".mcp.json", tt.content, 0o644)
			cfg, err := readMCPJSON(p)
			switch {
			case tt.err != "":
				if err == nil || !strings.Contains(err.Error(), tt.err) || !strings.Contains(err.Error(), p) {
					t.Fatalf("error %v, want %q naming the file", err, tt.err)
				}
			case err != nil:
				t.Fatal(err)
			case tt.key == "" && cfg != nil:
				t.Fatalf("got %+v, want none", cfg)
			case tt.key != "" && (cfg == nil || cfg.Key != tt.key):
				t.Fatalf("got %+v, want key %q", cfg, tt.key)
			}
		})
	}
	// Ensure a missing file is no error.
	if cfg, err := readMCPJSON(filepath.Join(t.TempDir(), "none.json")); cfg != nil || err != nil {
		t.Fatalf("%v %v", cfg, err)
	}
}
