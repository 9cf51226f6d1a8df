package mcp

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	sdkmcp "github.com/modelcontextprotocol/go-sdk/mcp"
)

// MaxLine bounds one line (one JSON-RPC message) read over stdio: the
// SDK's own bound. A longer line is answered with an error and skipped
// without being held in memory.
const MaxLine = sdkmcp.DefaultMaxLineLength

// StdioTransport is the MCP transport of `custos mcp` over newline-delimited
// JSON on In and Out (stdin and stdout). It is the SDK's IOTransport behind
// a line filter: the SDK ends the session at the first line that is not a
// JSON-RPC message, so a line that is not JSON is answered here with a
// JSON-RPC parse error (-32700), and one that is JSON but not a message, a
// batch (not part of MCP since 2025-06-18) or longer than MaxLine with an
// invalid request error (-32600), as JSON-RPC 2.0 asks; the session goes on.
// Blank lines are skipped. Neither the answer nor the log holds the line.
type StdioTransport struct {
	In     io.Reader    // the agent's messages, a line each (stdin)
	Out    io.Writer    // the answers (stdout)
	Logger *slog.Logger // where refused lines are noted; nil: nowhere
}

// Connect starts reading In and returns the connection the server runs on.
func (t *StdioTransport) Connect(ctx context.Context) (sdkmcp.Connection, error) {
	pr, pw := io.Pipe()
	out := &lockedWriter{w: t.Out}
	f := &lineFilter{in: t.In, fwd: pw, out: out, log: t.Logger}
	go f.run()
	// The filter bounds each message; the SDK's own bound would count
	// what its decoder reads ahead of the next one.
	return (&sdkmcp.IOTransport{Reader: pr, Writer: out, MaxLineLength: -1}).Connect(ctx)
}

// lockedWriter serializes the SDK's messages and the filter's answers, so
// that each goes out as one whole line.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// Close leaves Out open: it is the process's stdout.
func (l *lockedWriter) Close() error { return nil }

// lineFilter passes In's lines that are JSON-RPC messages to fwd and
// answers the others on out.
type lineFilter struct {
	in  io.Reader
	fwd *io.PipeWriter // the SDK's side
	out io.Writer
	log *slog.Logger
}

func (f *lineFilter) run() {
	br := bufio.NewReaderSize(f.in, 64<<10)
	var line []byte
	for {
		l, tooLong, err := readLine(br, line[:0], MaxLine)
		line = l
		if len(bytes.TrimSpace(line)) > 0 || tooLong {
			if werr := f.handle(line, tooLong); werr != nil {
				return // the session ended
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = nil
			}
			_ = f.fwd.CloseWithError(err) // the SDK reads EOF (or err) and ends the session
			return
		}
		if cap(line) > 1<<20 {
			line = nil // do not keep a large line's buffer for the session
		}
	}
}

// readLine appends the next line of br (without its newline) to buf. A line
// longer than limit is read to its end but not kept: tooLong is set and the
// line returned is empty. err is br's error; the line before it is whole.
func readLine(br *bufio.Reader, buf []byte, limit int) (line []byte, tooLong bool, err error) {
	for {
		frag, err := br.ReadSlice('\n')
		if !tooLong {
			if len(buf)+len(frag) > limit+1 { // +1: the newline
				tooLong, buf = true, buf[:0]
			} else {
				buf = append(buf, frag...)
			}
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		return bytes.TrimSuffix(buf, []byte("\n")), tooLong, err
	}
}

// handle forwards a line that is one JSON-RPC message and answers any
// other. It returns an error when the session has ended.
func (f *lineFilter) handle(line []byte, tooLong bool) error {
	code, msg, id := check(line, tooLong)
	if code == 0 {
		if _, err := f.fwd.Write(append(line, '\n')); err != nil {
			return err
		}
		return nil
	}
	if f.log != nil {
		f.log.Warn("mcp: refused a message", "code", code, "reason", msg, "bytes", len(line))
	}
	// The SDK's encoder leaves out an unknown id; JSON-RPC wants it null.
	resp, err := json.Marshal(errorResponse{Version: "2.0", ID: id, Error: &jsonrpc.Error{Code: code, Message: msg}})
	if err != nil {
		return nil // not reached: an id from MakeID and a fixed message encode
	}
	_, err = f.out.Write(append(resp, '\n'))
	return err
}

// maxEchoedID is the longest id (as sent) an error answer repeats; a
// longer one is answered for the null id.
const maxEchoedID = 256

// errorResponse is a JSON-RPC error response whose id may be null.
type errorResponse struct {
	Version string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Error   *jsonrpc.Error  `json:"error"`
}

// check classifies a line: code 0 is a JSON-RPC message the SDK takes;
// otherwise code and msg are the error to answer with, for the message's
// id if it has one of a valid type (a string or a number, as sent) and at
// most maxEchoedID bytes long, else for the null id.
func check(line []byte, tooLong bool) (code int64, msg string, id json.RawMessage) {
	id = json.RawMessage("null")
	switch {
	case tooLong:
		return jsonrpc.CodeInvalidRequest, fmt.Sprintf("Invalid Request: a message is at most %d bytes", MaxLine), id
	case !json.Valid(line):
		return jsonrpc.CodeParseError, "Parse error: the line is not one JSON value", id
	}
	t := bytes.TrimSpace(line)
	if t[0] == '[' {
		return jsonrpc.CodeInvalidRequest, "Invalid Request: batches are not supported (MCP 2025-06-18 removed them); send one message a line", id
	}
	if _, err := jsonrpc.DecodeMessage(t); err != nil {
		var v struct {
			ID json.RawMessage `json:"id"`
		}
		if json.Unmarshal(t, &v) == nil && len(v.ID) > 0 && len(v.ID) <= maxEchoedID && (v.ID[0] == '"' || v.ID[0] == '-' || v.ID[0] >= '0' && v.ID[0] <= '9') {
			id = v.ID
		}
		return jsonrpc.CodeInvalidRequest, "Invalid Request: not a JSON-RPC 2.0 request, notification or response", id
	}
	return 0, "", id
}
