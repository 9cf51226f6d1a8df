// Package http serves the custos API over HTTP and holds the Go client of that
// API. The server maps requests onto the domain services of package custos;
// the client implements the same service interfaces over the wire, so the CLI
// and the tests can use either interchangeably.
//
// The contract (paths, headers, shapes, error codes) is docs/API.md.
package http

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/custos-dev/custos"
)

// Request headers that carry the caller's identity. The client IP is never
// taken from a header; the server reads it from the connection.
const (
	HeaderAgent       = "X-Custos-Agent"
	HeaderHostname    = "X-Custos-Hostname"
	HeaderMachineUser = "X-Custos-User"
	HeaderSource      = "X-Custos-Source"
	HeaderModel       = "X-AI-Model"
)

// DefaultAgent is the agent name of a request without X-Custos-Agent.
const DefaultAgent = "api"

// MaxBodyBytes is the largest request body the server reads.
const MaxBodyBytes = 256 << 10

// MaxModelBytes is the longest X-AI-Model value the server accepts.
const MaxModelBytes = 128

// codes maps every error code to its HTTP status. It is the only such table:
// Error uses it one way, the client's FromErrorStatusCode the other.
var codes = map[string]int{
	custos.EINVALID:       http.StatusBadRequest,
	custos.EUNAUTHORIZED:  http.StatusUnauthorized,
	custos.EFORBIDDEN:     http.StatusForbidden,
	custos.EDEVICEPENDING: http.StatusForbidden,
	custos.EPOLICY:        http.StatusForbidden,
	custos.ENOTFOUND:      http.StatusNotFound,
	custos.ECONFLICT:      http.StatusConflict,
	custos.EEXPIRED:       http.StatusGone,
	custos.ETOOLARGE:      http.StatusRequestEntityTooLarge,
	custos.ERATELIMITED:   http.StatusTooManyRequests,
	custos.EINTERNAL:      http.StatusInternalServerError,
	custos.EUNAVAILABLE:   http.StatusServiceUnavailable,
}

// ErrorStatusCode returns the HTTP status of an error code; 500 for a code it
// does not know.
func ErrorStatusCode(code string) int {
	if v, ok := codes[code]; ok {
		return v
	}
	return http.StatusInternalServerError
}

// FromErrorStatusCode returns the error code of an HTTP status, for responses
// that carry no code of their own. A status shared by several codes (403)
// gives the most general one (forbidden); an unknown status gives internal.
func FromErrorStatusCode(status int) string {
	switch status {
	case http.StatusForbidden:
		return custos.EFORBIDDEN
	case http.StatusMethodNotAllowed, http.StatusUnsupportedMediaType:
		return custos.EINVALID
	}
	for code, st := range codes {
		if st == status && st != http.StatusForbidden {
			return code
		}
	}
	return custos.EINTERNAL
}

// statusError is an *custos.Error sent with a status other than its code's:
// 405 and 415, which docs/API.md reports with code invalid.
type statusError struct {
	status int
	err    *custos.Error
}

func (e *statusError) Error() string { return e.err.Error() }
func (e *statusError) Unwrap() error { return e.err }

// errorResponse is the one JSON shape of every error.
type errorResponse struct {
	Error errorBody `json:"error"`
}

type errorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Error writes err as a JSON error response with the status of its code
// (docs/API.md). Errors that are not *custos.Error, or carry an unknown code,
// are logged with their detail and sent as "Internal error."; unavailable
// errors are logged at warn.
func Error(w http.ResponseWriter, r *http.Request, err error) {
	if err == nil {
		err = errors.New("http.Error called with a nil error")
	}
	code, message := custos.ErrorCode(err), custos.ErrorMessage(err)
	if _, ok := codes[code]; !ok {
		code = custos.EINTERNAL
	}
	status := ErrorStatusCode(code)
	var se *statusError
	if errors.As(err, &se) {
		status = se.status
	}
	if code == custos.EINTERNAL {
		message = "Internal error."
		loggerFrom(r).Error("internal error",
			slog.String("method", r.Method),
			slog.String("route", routeOf(r)),
			slog.String("error", err.Error()))
	} else if code == custos.EUNAVAILABLE {
		loggerFrom(r).Warn("service unavailable",
			slog.String("method", r.Method),
			slog.String("route", routeOf(r)),
			slog.String("error", err.Error()))
	}
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", "Bearer")
	}
	writeJSON(w, r, status, &errorResponse{Error: errorBody{Code: code, Message: message}})
}

// writeJSON writes v as the JSON body of a response with status.
func writeJSON(w http.ResponseWriter, r *http.Request, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Del("Content-Length")
	w.WriteHeader(status)
	if err := json.NewEncoder(w).Encode(v); err != nil {
		loggerFrom(r).Debug("write response", slog.String("error", err.Error()))
	}
}

// invalidf returns an EINVALID error.
func invalidf(format string, args ...any) error {
	return custos.Errorf(custos.EINVALID, format, args...)
}

// checkContentType requires an application/json body (charset utf-8 at most).
func checkContentType(r *http.Request) error {
	ct := r.Header.Get("Content-Type")
	mt, params, err := mime.ParseMediaType(ct)
	ok := err == nil && mt == "application/json"
	for k, v := range params {
		if k != "charset" || !strings.EqualFold(v, "utf-8") {
			ok = false
		}
	}
	if !ok {
		return &statusError{
			status: http.StatusUnsupportedMediaType,
			err:    custos.Errorf(custos.EINVALID, "Content-Type must be application/json"),
		}
	}
	return nil
}

// readBody reads the whole body, at most MaxBodyBytes.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	return readBodyMax(w, r, MaxBodyBytes)
}

// readBodyMax reads the whole body, at most max bytes.
func readBodyMax(w http.ResponseWriter, r *http.Request, max int64) ([]byte, error) {
	if r.Body == nil || r.Body == http.NoBody {
		return nil, nil
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, max))
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return nil, custos.Errorf(custos.ETOOLARGE, "request body too large: at most %d bytes", max)
	} else if err != nil {
		return nil, invalidf("could not read the request body")
	}
	return b, nil
}

// decodeBody decodes a required JSON object body into v strictly: JSON
// content type, at most MaxBodyBytes, no unknown fields, nothing after the
// object.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) error {
	return decodeBodyMax(w, r, v, MaxBodyBytes)
}

// decodeBodyMax is decodeBody for a body of at most max bytes.
func decodeBodyMax(w http.ResponseWriter, r *http.Request, v any, max int64) error {
	if err := checkContentType(r); err != nil {
		return err
	}
	b, err := readBodyMax(w, r, max)
	if err != nil {
		return err
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return invalidf("request body required: a JSON object")
	}
	return decodeJSON(b, v)
}

// decodeOptionalBody is decodeBody for bodies that may be left out: an empty
// body leaves v untouched.
func decodeOptionalBody(w http.ResponseWriter, r *http.Request, v any) error {
	if r.ContentLength > 0 {
		if err := checkContentType(r); err != nil {
			return err
		}
	}
	b, err := readBody(w, r)
	if err != nil {
		return err
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return nil
	}
	if err := checkContentType(r); err != nil {
		return err
	}
	return decodeJSON(b, v)
}

// noBody rejects a request body on endpoints that take none.
func noBody(w http.ResponseWriter, r *http.Request) error {
	b, err := readBody(w, r)
	if err != nil {
		return err
	}
	if len(bytes.TrimSpace(b)) != 0 {
		return invalidf("this endpoint takes no request body")
	}
	return nil
}

// decodeJSON decodes exactly one JSON object from b into v, rejecting unknown
// fields. Messages name fields and offsets, never the input's content.
func decodeJSON(b []byte, v any) error {
	if t := bytes.TrimLeft(b, " \t\r\n"); len(t) == 0 || t[0] != '{' {
		return invalidf("request body must be a JSON object")
	}
	if !utf8.Valid(b) {
		return invalidf("request body is not valid UTF-8")
	}
	if err := checkKeys(b, v); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	var extra json.RawMessage
	if err := dec.Decode(&extra); err != io.EOF {
		return invalidf("request body must hold exactly one JSON value")
	}
	return nil
}

// checkKeys rejects what encoding/json would let through in the top-level
// object: keys that match a field only case-insensitively, and keys given
// twice. v is a pointer to a struct.
func checkKeys(b []byte, v any) error {
	t := reflect.TypeOf(v)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return nil
	}
	allowed := make(map[string]bool, t.NumField())
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		allowed[name] = true
	}

	dec := json.NewDecoder(bytes.NewReader(b))
	if _, err := dec.Token(); err != nil { // the opening brace
		return jsonError(err)
	}
	seen := make(map[string]bool)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return jsonError(err)
		}
		key, _ := tok.(string)
		switch {
		case !allowed[key]:
			return invalidf("unknown field %q", clip(key, 64))
		case seen[key]:
			return invalidf("field %q given more than once", key)
		}
		seen[key] = true
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return jsonError(err)
		}
	}
	return nil
}

// jsonError turns a decoding error into an EINVALID error with a message that
// does not echo the input.
func jsonError(err error) error {
	var (
		ce  *custos.Error
		se  *json.SyntaxError
		ute *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &ce):
		return ce
	case errors.As(err, &se):
		return invalidf("malformed JSON at offset %d", se.Offset)
	case errors.As(err, &ute):
		if ute.Field != "" {
			return invalidf("invalid type for field %q: want %s", ute.Field, jsonType(ute.Type.Kind().String()))
		}
		return invalidf("invalid JSON type: want %s", jsonType(ute.Type.Kind().String()))
	case errors.Is(err, io.ErrUnexpectedEOF):
		return invalidf("malformed JSON: unexpected end of body")
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return invalidf("unknown field %s", clip(strings.TrimPrefix(err.Error(), "json: unknown field "), 64))
	}
	return invalidf("malformed JSON body")
}

// jsonType names a Go kind the way a JSON user thinks of it.
func jsonType(kind string) string {
	switch kind {
	case "string":
		return "string"
	case "map", "struct", "ptr":
		return "object"
	case "slice", "array":
		return "array"
	case "bool":
		return "boolean"
	}
	return "number"
}

// clip shortens s to n bytes for a message.
func clip(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// allowQuery rejects query parameters other than allowed, and repeats of
// those that may appear once.
func allowQuery(q url.Values, once []string, many ...string) error {
	for k, vs := range q {
		switch {
		case contains(once, k):
			if len(vs) > 1 {
				return invalidf("query parameter %q given more than once", k)
			}
		case contains(many, k):
		default:
			return invalidf("unknown query parameter %q", clip(k, 40))
		}
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// queryTime reads query parameter name, if given, as an RFC 3339 time.
func queryTime(q url.Values, name string, t *time.Time) error {
	if _, ok := q[name]; !ok {
		return nil
	}
	v, err := time.Parse(time.RFC3339, q.Get(name))
	if err != nil {
		return invalidf("invalid %s %q: want an RFC 3339 time such as 2025-01-02T15:04:05Z", name, clip(q.Get(name), 40))
	}
	*t = v
	return nil
}

// queryLimit reads the limit query parameter, if given: 1 to most.
func queryLimit(q url.Values, most int, n *int) error {
	if _, ok := q["limit"]; !ok {
		return nil
	}
	v, err := strconv.Atoi(q.Get("limit"))
	if err != nil || v < 1 || v > most {
		return invalidf("invalid limit %q: want 1 to %d", clip(q.Get("limit"), 24), most)
	}
	*n = v
	return nil
}

// segment escapes one path segment for a client URL.
func segment(s string) string { return url.PathEscape(s) }

// fmtQuery renders a query for a client URL.
func fmtQuery(q url.Values) string {
	if len(q) == 0 {
		return ""
	}
	return "?" + q.Encode()
}
