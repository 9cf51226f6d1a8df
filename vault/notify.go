package vault

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/custos-dev/custos"
)

// Notifier settings.
const (
	notifyBatch       = 50
	notifyLease       = 60 * time.Second
	notifyMaxAttempts = 8
	notifyTimeout     = 10 * time.Second
	notifyPoll        = 2 * time.Second
)

// poke wakes the notifier without blocking.
func (s *Service) poke() {
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

// RunNotifier delivers notify-policy webhooks from the outbox until ctx is
// done: POST of the JSON payload, retried with exponential backoff (2s, 4s,
// … up to notifyMaxAttempts) on a non-2xx answer or a network error. client
// nil means a client with a 10 s timeout.
func (s *Service) RunNotifier(ctx context.Context, client *http.Client) {
	if client == nil {
		client = &http.Client{Timeout: notifyTimeout}
	}
	t := time.NewTicker(notifyPoll)
	defer t.Stop()
	for {
		for s.deliverDue(ctx, client) > 0 {
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.notify:
		}
	}
}

// deliverDue delivers one batch of due messages and returns how many it took.
func (s *Service) deliverDue(ctx context.Context, client *http.Client) int {
	now := s.timeNow()
	msgs, err := s.store.ClaimOutbox(ctx, now, notifyLease, notifyBatch)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Error("outbox claim failed", "err", err)
		}
		return 0
	}
	for _, m := range msgs {
		err := s.post(ctx, client, m)
		now := s.timeNow()
		if err == nil {
			err = s.store.CompleteOutbox(ctx, m.ID, now)
			if err != nil {
				s.log.Error("outbox complete failed", "id", m.ID, "err", err)
			}
			continue
		}
		var next *time.Time
		if m.Attempts < notifyMaxAttempts {
			t := now.Add(time.Duration(1<<m.Attempts) * time.Second)
			next = &t
		}
		s.log.Warn("notify webhook failed", "id", m.ID, "attempt", m.Attempts, "giving_up", next == nil, "err", err)
		if rerr := s.store.RetryOutbox(ctx, m.ID, now, next, err.Error()); rerr != nil {
			s.log.Error("outbox retry failed", "id", m.ID, "err", rerr)
		}
	}
	return len(msgs)
}

func (s *Service) post(ctx context.Context, client *http.Client, m *custos.OutboxMessage) error {
	ctx, cancel := context.WithTimeout(ctx, notifyTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, m.URL, bytes.NewReader(m.Payload))
	if err != nil {
		return fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "custos-notify/1")
	req.Header.Set("X-Custos-Event-Id", m.ID)
	resp, err := client.Do(req)
	if err != nil {
		// *url.Error quotes the whole URL, and a webhook URL can carry a
		// credential in its path: keep only the host.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("post to %s: %w", req.URL.Host, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("webhook answered %s", resp.Status)
	}
	return nil
}
