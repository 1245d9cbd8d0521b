package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kern-dev/kern/run"
)

// client talks to a kern server's HTTP API.
type client struct {
	base string // the server's URL, without a trailing slash
	key  string // the security key, if any
	http *http.Client
}

// addServerFlags adds --server and --security-key to cmd.
func addServerFlags(cmd *cobra.Command, server, key *string, def, serverHelp string) {
	cmd.Flags().StringVar(server, "server", def, serverHelp)
	cmd.Flags().StringVar(key, "security-key", "", "the server's security key (default $"+envSecurityKey+")")
}

func newClient(server, key string) (*client, error) {
	u, err := url.Parse(server)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("--server %q is not an http:// or https:// URL", server)
	}
	if key == "" {
		key = os.Getenv(envSecurityKey)
	}
	return &client{base: strings.TrimSuffix(server, "/"), key: key, http: &http.Client{}}, nil
}

// do sends a request and returns the response when its status is 2xx; otherwise an
// error with the server's detail.
func (c *client) do(ctx context.Context, method, path string, form url.Values) (*http.Response, error) {
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return nil, fmt.Errorf("server %s: %w", c.base, err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if c.key != "" {
		req.Header.Set("Authorization", "Bearer "+c.key)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("server %s: %s %s: %w", c.base, method, path, err)
	}
	if resp.StatusCode/100 == 2 {
		return resp, nil
	}
	defer resp.Body.Close()
	var e struct {
		Detail string `json:"detail"`
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if json.Unmarshal(b, &e) != nil || e.Detail == "" {
		e.Detail = compact(string(b), 200)
	}
	return nil, fmt.Errorf("server %s: %s %s: %s: %s", c.base, method, path, resp.Status, e.Detail)
}

// getJSON GETs path and decodes the JSON answer into v.
func (c *client) getJSON(ctx context.Context, path string, v any) error {
	resp, err := c.do(ctx, http.MethodGet, path, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return fmt.Errorf("server %s: GET %s: malformed answer: %w", c.base, path, err)
	}
	return nil
}

// postJSON POSTs form to path and decodes the JSON answer into v.
func (c *client) postJSON(ctx context.Context, path string, form url.Values, v any) error {
	resp, err := c.do(ctx, http.MethodPost, path, form)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return fmt.Errorf("server %s: POST %s: malformed answer: %w", c.base, path, err)
	}
	return nil
}

// cancel cancels a run, waiting for it to end, and returns its status.
func (c *client) cancel(ctx context.Context, runID string) (run.Status, error) {
	var ans struct {
		RunID  string     `json:"run_id"`
		Status run.Status `json:"status"`
	}
	err := c.postJSON(ctx, "/runs/"+url.PathEscape(runID)+"/cancel", url.Values{}, &ans)
	return ans.Status, err
}

// readSSE reads server-sent events from r and calls fn with each event's data until
// fn returns false or the stream ends.
func readSSE(r io.Reader, fn func(data []byte) (bool, error)) error {
	br := bufio.NewReaderSize(r, 64<<10)
	var data []byte
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		line = strings.TrimRight(line, "\r\n")
		switch {
		case line == "":
			if len(data) == 0 {
				continue
			}
			more, err := fn(data)
			if err != nil || !more {
				return err
			}
			data = data[:0]
		case strings.HasPrefix(line, "data:"):
			if len(data) > 0 {
				data = append(data, '\n')
			}
			data = append(data, strings.TrimPrefix(strings.TrimPrefix(line, "data:"), " ")...)
		}
		// event:, id: and ": ping" comments need nothing: the data names its event.
	}
}
