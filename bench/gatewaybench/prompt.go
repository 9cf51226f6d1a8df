package main

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/custos-dev/custos/bench/prompttext"
)

// ---- the prompt ----

// prompt is the request, non-streaming and streaming, and the values
// planted in it.
type prompt struct {
	plain, stream []byte
	planted       []string
}

type chatMessage struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

type chatRequest struct {
	Model         string         `json:"model"`
	Messages      []chatMessage  `json:"messages"`
	Temperature   float64        `json:"temperature"`
	MaxTokens     int            `json:"max_tokens"`
	Stream        bool           `json:"stream,omitempty"`
	StreamOptions *streamOptions `json:"stream_options,omitempty"`
}

type streamOptions struct {
	IncludeUsage bool `json:"include_usage"`
}

const systemPrompt = "You are a senior Go reviewer on the platform team. Review the code the user pastes: point out bugs, " +
	"race conditions, missing error handling, resource leaks and security problems, then suggest concrete fixes as small diffs. " +
	"Prefer the standard library. Keep the answer short and specific; do not restate the code. " +
	"If the code handles credentials, check that they are never logged, never written to disk in the clear and never sent to a third party. " +
	"Answer in Markdown with one heading per file."

// newPrompt builds the 8 KB request with freshly generated fake secrets: a
// GitHub token, an AWS access key id and an email address.
func newPrompt() (*prompt, error) {
	ghp := "ghp_" + (rand.Text() + strings.ToLower(rand.Text()))[:36]
	aws := "AKIA" + rand.Text()[:16]
	email := "dana." + strings.ToLower(rand.Text()[:6]) + "@northwind-traders.com"
	var u strings.Builder
	u.WriteString("Request " + nonceSlot + ". " + prompttext.Intro)
	u.WriteString(prompttext.Planted(email, ghp, aws))
	prompttext.AppendCode(&u, 2*promptSize)
	content := u.String()
	build := func(c string, stream bool) ([]byte, error) {
		r := chatRequest{Model: benchModel, Temperature: 0.2, MaxTokens: 1024,
			Messages: []chatMessage{{Role: "system", Content: systemPrompt}, {Role: "user", Content: c + "```\n"}}}
		if stream {
			r.Stream, r.StreamOptions = true, &streamOptions{IncludeUsage: true}
		}
		return json.Marshal(r)
	}
	// Keep the longest prefix of the code with which the streaming body
	// (the longer one) fits in promptSize.
	lo, hi := 0, len(content)
	for lo < hi {
		mid := (lo + hi + 1) / 2
		b, err := build(content[:mid], true)
		if err != nil {
			return nil, err
		}
		if len(b) <= promptSize {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	content = content[:lo]
	p := &prompt{planted: []string{ghp, aws, email}}
	var err error
	if p.plain, err = build(content, false); err != nil {
		return nil, err
	}
	if p.stream, err = build(content, true); err != nil {
		return nil, err
	}
	for _, v := range p.planted {
		if !bytes.Contains(p.plain, []byte(v)) {
			return nil, fmt.Errorf("prompt: planted value cut off")
		}
	}
	return p, nil
}

// check sends the prompt through custos to the echo upstream, streaming and
// not, and fails unless the upstream saw placeholders and no planted value
// and the caller got every planted value back.
func (f *fixture) check(p *prompt) error {
	for _, stream := range []bool{false, true} {
		body := p.plain
		if stream {
			body = p.stream
		}
		body = bytes.Replace(body, []byte(`"model":"`+benchModel+`"`), []byte(`"model":"`+echoModel+`"`), 1)
		t := newTarget("custos", f.custosURL+"/v1/chat/completions", f.token, f.custos)
		req, err := t.request(body)
		if err != nil {
			return err
		}
		resp, err := t.client.Do(req)
		if err != nil {
			return err
		}
		b, err := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("stream=%v: status %d: %s", stream, resp.StatusCode, clip(b))
		}
		answer, err := answerText(b, stream)
		if err != nil {
			return fmt.Errorf("stream=%v: %w", stream, err)
		}
		got, err := lastEchoed(f.upURL)
		if err != nil {
			return err
		}
		n := len(placeholderRE.FindAll(got, -1))
		if n < len(p.planted) {
			return fmt.Errorf("stream=%v: the upstream saw %d placeholders, want at least %d", stream, n, len(p.planted))
		}
		f.placeholders = n
		for _, v := range p.planted {
			if bytes.Contains(got, []byte(v)) {
				return fmt.Errorf("stream=%v: the upstream received a planted value (%.8s…) in the clear", stream, v)
			}
			if !strings.Contains(answer, v) {
				return fmt.Errorf("stream=%v: the caller did not get a planted value (%.8s…) back restored: %q", stream, v, answer)
			}
		}
		if strings.Contains(answer, "[[") {
			return fmt.Errorf("stream=%v: a placeholder reached the caller: %q", stream, answer)
		}
	}
	return nil
}

// lastEchoed returns the last body the echo upstream received.
func lastEchoed(upstream string) ([]byte, error) {
	resp, err := http.Get(upstream + "/echo/last") // #nosec G107 -- the bench's own upstream on loopback
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("echo upstream: status %d", resp.StatusCode)
	}
	return io.ReadAll(resp.Body)
}

// answerText returns the assistant text of a chat completion or of an SSE
// stream of chunks.
func answerText(b []byte, stream bool) (string, error) {
	type choice struct {
		Message struct{ Content string } `json:"message"`
		Delta   struct{ Content string } `json:"delta"`
	}
	type completion struct{ Choices []choice }
	if !stream {
		var c completion
		if err := json.Unmarshal(b, &c); err != nil || len(c.Choices) == 0 {
			return "", fmt.Errorf("bad answer: %s", clip(b))
		}
		return c.Choices[0].Message.Content, nil
	}
	var s strings.Builder
	done := false
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		d, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		if d == "[DONE]" {
			done = true
			continue
		}
		var c completion
		if err := json.Unmarshal([]byte(d), &c); err != nil {
			return "", fmt.Errorf("bad chunk %q", d)
		}
		for _, ch := range c.Choices {
			s.WriteString(ch.Delta.Content)
		}
	}
	if !done {
		return "", errors.New("the stream did not end with [DONE]")
	}
	return s.String(), nil
}

func clip(b []byte) string {
	if len(b) > 300 {
		return string(b[:300]) + "…"
	}
	return string(b)
}
