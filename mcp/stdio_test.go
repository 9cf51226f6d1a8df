package mcp

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
)

// stdioPeer is the agent's end of a StdioTransport served by a real server.
type stdioPeer struct {
	t     *testing.T
	in    *io.PipeWriter
	lines chan []byte
	done  chan error
	log   *bytes.Buffer
}

func startStdio(t *testing.T) *stdioPeer {
	t.Helper()
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	p := &stdioPeer{t: t, in: inW, lines: make(chan []byte, 16), done: make(chan error, 1), log: &bytes.Buffer{}}
	logger := slog.New(slog.NewJSONHandler(&lockedWriter{w: p.log}, nil))
	srv := NewServer(Config{Connect: func(string) (*Services, error) { return nil, errors.New("no services in this test") }})
	go func() {
		p.done <- srv.Run(context.Background(), &StdioTransport{In: inR, Out: outW, Logger: logger})
		_ = outW.Close()
	}()
	go func() {
		sc := bufio.NewScanner(outR)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			p.lines <- bytes.Clone(sc.Bytes())
		}
		close(p.lines)
	}()
	t.Cleanup(func() { _ = inW.Close() })
	return p
}

func (p *stdioPeer) send(line string) {
	p.t.Helper()
	if _, err := io.WriteString(p.in, line+"\n"); err != nil {
		p.t.Fatalf("send: %v", err)
	}
}

// reply is one message the server wrote.
type reply struct {
	ID     json.RawMessage `json:"id"`
	Result json.RawMessage `json:"result"`
	Error  *jsonrpc.Error  `json:"error"`
}

func (p *stdioPeer) next() reply {
	p.t.Helper()
	select {
	case b, ok := <-p.lines:
		if !ok {
			p.t.Fatal("the server ended the session")
		}
		var r reply
		if err := json.Unmarshal(b, &r); err != nil {
			p.t.Fatalf("reply %q: %v", b, err)
		}
		return r
	case <-time.After(10 * time.Second):
		p.t.Fatal("no reply")
	}
	return reply{}
}

func TestStdioTransport(t *testing.T) {
	// Ensure a line that is not a JSON-RPC message gets a JSON-RPC error and the session goes on.
	p := startStdio(t)
	wantErr := func(what string, code int64, id string) {
		t.Helper()
		r := p.next()
		if r.Error == nil || r.Error.Code != code || string(r.ID) != id || r.Result != nil {
			t.Fatalf("%s: got id %s error %+v result %s, want code %d id %s", what, r.ID, r.Error, r.Result, code, id)
		}
	}
	wantResult := func(what, id string) json.RawMessage {
		t.Helper()
		r := p.next()
		if r.Error != nil || r.Result == nil || string(r.ID) != id {
			t.Fatalf("%s: got id %s error %+v, want a result for %s", what, r.ID, r.Error, id)
		}
		return r.Result
	}
	p.send("not json at all: sk_live_planted")
	wantErr("not JSON before initialize", jsonrpc.CodeParseError, "null")
	p.send(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`)
	wantResult("initialize", "1")
	p.send(`{"jsonrpc":"2.0","method":"notifications/initialized"}`)
	for _, tc := range []struct{ line, what string }{
		{`{"jsonrpc":"2.0","id":2,"method":"ping"`, "cut off"},
		{`{"a":1} {"b":2}`, "two values on a line"},
		{"\xff\xfe{}", "not UTF-8 JSON"},
	} {
		p.send(tc.line)
		wantErr(tc.what, jsonrpc.CodeParseError, "null")
	}
	for _, tc := range []struct{ line, what, id string }{
		{`{}`, "an empty object", "null"},
		{`42`, "a number", "null"},
		{`[{"jsonrpc":"2.0","id":9,"method":"ping"}]`, "a batch", "null"},
		{`[]`, "an empty batch", "null"},
		{`{"jsonrpc":"1.0","id":"x7","method":"ping"}`, "JSON-RPC 1.0", `"x7"`},
		{`{"jsonrpc":"2.0","id":{"a":1},"method":"ping"}`, "an object id", "null"},
		{`{"jsonrpc":"2.0","id":true,"method":"ping"}`, "a boolean id", "null"},
		{`{"jsonrpc":"1.0","id":"` + strings.Repeat("i", maxEchoedID) + `","method":"ping"}`, "a long id", "null"},
		{`{"jsonrpc":"2.0","id":12.5,"method":7}`, "a method that is not a string", "12.5"},
		{strings.Repeat("x", MaxLine+1), "a line longer than MaxLine", "null"},
	} {
		p.send(tc.line)
		wantErr(tc.what, jsonrpc.CodeInvalidRequest, tc.id)
	}
	p.send("")
	p.send(" \t ")
	p.send(`{"jsonrpc":"2.0","id":2,"method":"ping"}` + "\r")
	wantResult("ping after blank lines, with CRLF", "2")
	p.send(`{"jsonrpc":"2.0","id":2,"method":"ping"}`)
	wantResult("the same ping again", "2")
	p.send(` {"jsonrpc":"2.0","id":"three","method":"tools/list"}`)
	var tools struct{ Tools []struct{ Name string } }
	if err := json.Unmarshal(wantResult("tools/list", `"three"`), &tools); err != nil || len(tools.Tools) == 0 {
		t.Fatalf("tools/list: %v %+v", err, tools)
	}
	p.send(`{"jsonrpc":"2.0","id":4,"method":"no/such/method"}`)
	wantErr("an unknown method (the SDK's answer)", jsonrpc.CodeMethodNotFound, "4")

	// Closing stdin ends the session cleanly.
	_ = p.in.Close()
	select {
	case err := <-p.done:
		if err != nil && !errors.Is(err, io.EOF) {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after stdin closed")
	}
	if b, ok := <-p.lines; ok {
		t.Fatalf("unexpected output %q", b)
	}
	log := p.log.String()
	if strings.Count(log, `"msg":"mcp: refused a message"`) != 14 || strings.Contains(log, "sk_live_planted") || strings.Contains(log, "x7") {
		t.Fatalf("log: %s", log)
	}
}

func TestReadLine(t *testing.T) {
	// Ensure lines come out whole, a line over the limit is skipped without being kept, and the last line needs no newline.
	in := "ab\n\ncdefgh\nijkl\r\n" + strings.Repeat("m", 100) + "\nno newline"
	br := bufio.NewReaderSize(strings.NewReader(in), 16)
	type got struct {
		line    string
		tooLong bool
	}
	var lines []got
	for {
		l, tooLong, err := readLine(br, nil, 6)
		lines = append(lines, got{string(l), tooLong})
		if err != nil {
			if err != io.EOF {
				t.Fatal(err)
			}
			break
		}
	}
	want := []got{{"ab", false}, {"", false}, {"cdefgh", false}, {"ijkl\r", false}, {"", true}, {"", true}}
	if len(lines) != len(want) {
		t.Fatalf("got %+v, want %+v", lines, want)
	}
	for i := range want {
		if lines[i] != want[i] {
			t.Fatalf("line %d: got %+v, want %+v", i, lines[i], want[i])
		}
	}
}

func FuzzStdioLine(f *testing.F) {
	for _, s := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"ping"}`, `{"jsonrpc":"2.0","id":"a","result":{}}`, `[1]`, `{}`, `null`,
		`{"jsonrpc":"1.0","id":-3e5,"method":"x"}`, "\xff", `{"id":"\u0000"}`, `  {"jsonrpc":"2.0","method":"n"}  `,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		code, msg, id := check(line, false)
		if code == 0 {
			// What the filter passes, the SDK decodes: it never ends the session.
			if _, err := jsonrpc.DecodeMessage(bytes.TrimSpace(line)); err != nil {
				t.Fatalf("passed %q, which the SDK refuses: %v", line, err)
			}
			return
		}
		b, err := json.Marshal(errorResponse{Version: "2.0", ID: id, Error: &jsonrpc.Error{Code: code, Message: msg}})
		if err != nil {
			t.Fatalf("answer to %q: %v", line, err)
		}
		var r reply
		if err := json.Unmarshal(b, &r); err != nil || r.Error == nil || len(r.ID) > maxEchoedID {
			t.Fatalf("answer %s to %q: %v", b, line, err)
		}
		if string(r.ID) != "null" {
			if _, err := jsonrpc.MakeID(jsonValue(r.ID)); err != nil {
				t.Fatalf("answer %s to %q has an id of the wrong type", b, line)
			}
		}
	})
}

func jsonValue(b []byte) any {
	var v any
	_ = json.Unmarshal(b, &v)
	return v
}
