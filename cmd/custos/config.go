package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
)

// defaultURL is the server URL when CUSTOS_URL is not set anywhere.
const defaultURL = "http://127.0.0.1:8080"

// clientConfig is where the server is and which API key to present.
type clientConfig struct {
	URL    string
	Key    string // never printed
	Source string // where the key came from, for messages
}

// errNoKey explains where the CLI looks for an API key.
var errNoKey = errors.New(`no API key found. custos looks, in this order, at:
  1. the CUSTOS_API_KEY environment variable
  2. CUSTOS_API_KEY_FILE: the path of a file holding the key
  3. a CUSTOS_API_KEY=… line in .custosrc (mode 0600), in the current
     directory, then in your home directory
  4. mcpServers.custos.env.CUSTOS_API_KEY in .mcp.json, in the current
     directory, then in your home directory
On its first start, custos serve wrote the owner key to custos-data/owner.key:
  export CUSTOS_API_KEY=$(cat custos-data/owner.key)`)

// loadConfig finds the API key (see errNoKey for the order) and the server
// URL: CUSTOS_URL from the environment, else from the file that gave the
// key, else defaultURL. A URL is never taken from one file and the key from
// another, so a stray file cannot send the key to another server.
func (c *CLI) loadConfig() (*clientConfig, error) {
	cfg, err := c.findKey()
	if err != nil {
		return nil, err
	}
	if v := c.getenv("CUSTOS_URL"); v != "" {
		cfg.URL = v
	} else if cfg.URL == "" {
		cfg.URL = defaultURL
	}
	if u, err := url.Parse(cfg.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("invalid server URL %q: want http://HOST:PORT or https://HOST", clip(cfg.URL, 80))
	}
	for i := 0; i < len(cfg.Key); i++ {
		if cfg.Key[i] <= ' ' || cfg.Key[i] > '~' {
			return nil, fmt.Errorf("the API key from %s contains spaces or control characters", cfg.Source)
		}
	}
	return cfg, nil
}

func (c *CLI) findKey() (*clientConfig, error) {
	if k := strings.TrimSpace(c.getenv("CUSTOS_API_KEY")); k != "" {
		return &clientConfig{Key: k, Source: "CUSTOS_API_KEY"}, nil
	}
	if p := c.getenv("CUSTOS_API_KEY_FILE"); p != "" {
		p = c.abs(p)
		b, err := readSmallFile(p, 4<<10)
		if err != nil {
			return nil, fmt.Errorf("CUSTOS_API_KEY_FILE: %w", err)
		}
		k := strings.TrimSpace(string(b))
		if k == "" {
			return nil, fmt.Errorf("CUSTOS_API_KEY_FILE: %s is empty", p)
		}
		return &clientConfig{Key: k, Source: p}, nil
	}
	dirs := c.configDirs()
	for _, d := range dirs {
		cfg, err := readCustosrc(filepath.Join(d, ".custosrc"))
		if cfg != nil || err != nil {
			return cfg, err
		}
	}
	for _, d := range dirs {
		cfg, err := readMCPJSON(filepath.Join(d, ".mcp.json"))
		if cfg != nil || err != nil {
			return cfg, err
		}
	}
	return nil, errNoKey
}

// configDirs returns Dir then Home, without empties or repeats.
func (c *CLI) configDirs() []string {
	var dirs []string
	for _, d := range []string{c.Dir, c.Home} {
		if d != "" && (len(dirs) == 0 || filepath.Clean(dirs[0]) != filepath.Clean(d)) {
			dirs = append(dirs, d)
		}
	}
	return dirs
}

// abs resolves p against the CLI's working directory.
func (c *CLI) abs(p string) string {
	if filepath.IsAbs(p) || c.Dir == "" {
		return p
	}
	return filepath.Join(c.Dir, p)
}

// readSmallFile reads a regular file of at most max bytes.
func readSmallFile(path string, max int64) ([]byte, error) {
	f, err := os.Open(path) // #nosec G304 -- the user names the file
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, max)
	}
	return b, nil
}

// readCustosrc reads CUSTOS_API_KEY and CUSTOS_URL from a dotenv-style
// .custosrc. It returns nil, nil if the file does not exist or sets no key,
// and refuses a file that others may read or write.
func readCustosrc(path string) (*clientConfig, error) {
	f, err := os.Open(path) // #nosec G304 -- a fixed name in a known directory
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("%s holds an API key but is accessible by group or others (mode %04o); run: chmod 600 %s", path, perm, path)
	}
	lines, err := ParseEnv(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	cfg := &clientConfig{Source: path}
	for _, l := range lines {
		switch l.Key {
		case "CUSTOS_API_KEY":
			cfg.Key = strings.TrimSpace(l.Value)
		case "CUSTOS_URL":
			cfg.URL = strings.TrimSpace(l.Value)
		}
	}
	if cfg.Key == "" {
		return nil, nil
	}
	return cfg, nil
}

// readMCPJSON reads mcpServers.custos.env.CUSTOS_API_KEY (and CUSTOS_URL)
// from an MCP client's .mcp.json. It returns nil, nil if the file does not
// exist or has no custos server with a key.
func readMCPJSON(path string) (*clientConfig, error) {
	b, err := readSmallFile(path, 1<<20)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	var doc struct {
		MCPServers map[string]json.RawMessage `json:"mcpServers"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("%s is not valid JSON: %s", path, jsonErrorText(b, err))
	}
	raw, ok := doc.MCPServers["custos"]
	if !ok {
		return nil, nil
	}
	var server struct {
		Env map[string]any `json:"env"`
	}
	if err := json.Unmarshal(raw, &server); err != nil {
		return nil, fmt.Errorf("%s: mcpServers.custos must be an object with an \"env\" object", path)
	}
	str := func(name string) (string, error) {
		v, ok := server.Env[name]
		if !ok || v == nil {
			return "", nil
		}
		s, ok := v.(string)
		if !ok {
			return "", fmt.Errorf("%s: mcpServers.custos.env.%s must be a string", path, name)
		}
		return strings.TrimSpace(s), nil
	}
	key, err := str("CUSTOS_API_KEY")
	if err != nil || key == "" {
		return nil, err
	}
	u, err := str("CUSTOS_URL")
	if err != nil {
		return nil, err
	}
	return &clientConfig{Key: key, URL: u, Source: path}, nil
}

// jsonErrorText describes a JSON decoding error with its line number.
func jsonErrorText(b []byte, err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		line := 1 + bytes.Count(b[:min(int(se.Offset), len(b))], []byte("\n"))
		return fmt.Sprintf("line %d: %v", line, se)
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		if te.Field == "" {
			return "the top level must be an object"
		}
		return te.Field + " must be an object"
	}
	return err.Error()
}
