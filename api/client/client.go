// Package client is a Go client of ember's daemon API (package api): every
// route as a method, errors as *api.Error with the daemon's code.
//
//	c := client.New("/run/ember/api.sock")
//	vm, err := c.Create(ctx, api.CreateRequest{Config: machine.Config{Guest: "demo"}, Start: true})
package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"

	"ember/api"
	"ember/machine"
)

// Client talks to one daemon over its unix socket. It is safe for
// concurrent use.
type Client struct {
	socket string
	http   *http.Client
}

// New returns a client of the daemon listening on the unix socket path.
func New(path string) *Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
		MaxIdleConnsPerHost: 16,
	}
	return &Client{socket: path, http: &http.Client{Transport: tr}}
}

// Close releases the client's idle connections.
func (c *Client) Close() { c.http.CloseIdleConnections() }

// do sends a request with in (if not nil) as its JSON body and decodes a
// 2xx answer into out (if not nil); any other answer is an *api.Error.
func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	res, err := c.send(ctx, method, path, in)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if out == nil {
		io.Copy(io.Discard, res.Body)
		return nil
	}
	if err := json.NewDecoder(res.Body).Decode(out); err != nil {
		return fmt.Errorf("ember daemon: %s %s: decoding the answer: %w", method, path, err)
	}
	return nil
}

// send sends a request and returns a 2xx response, or the error.
func (c *Client) send(ctx context.Context, method, path string, in any) (*http.Response, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://ember"+path, body)
	if err != nil {
		return nil, err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := c.http.Do(req)
	if err != nil {
		return nil, c.unreachable(err)
	}
	if res.StatusCode/100 == 2 {
		return res, nil
	}
	defer res.Body.Close()
	return nil, decodeError(res)
}

// unreachable wraps an error reaching the daemon; where nothing listens on
// the socket (no file, or no daemon behind it) it says what to check.
func (c *Client) unreachable(err error) error {
	if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("ember daemon at %s: %w (is `ember daemon --api-socket %s` running?)", c.socket, err, c.socket)
	}
	return fmt.Errorf("ember daemon at %s: %w", c.socket, err)
}

// decodeError reads an error answer.
func decodeError(res *http.Response) error {
	var e api.ErrorBody
	b, _ := io.ReadAll(io.LimitReader(res.Body, 64<<10))
	if err := json.Unmarshal(b, &e); err != nil || e.Error.Code == "" {
		return &api.Error{Status: res.StatusCode, Code: api.CodeInternal, Message: strings.TrimSpace(string(b))}
	}
	e.Error.Status = res.StatusCode
	return &e.Error
}

// Code returns the daemon's error code of err, or "" if err is not one.
func Code(err error) string {
	var e *api.Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// Info returns the daemon's description of itself.
func (c *Client) Info(ctx context.Context) (api.Info, error) {
	var i api.Info
	return i, c.do(ctx, "GET", "/v1/info", nil, &i)
}

// List returns every VM.
func (c *Client) List(ctx context.Context) ([]api.VM, error) {
	var l api.VMList
	return l.VMs, c.do(ctx, "GET", "/v1/vms", nil, &l)
}

// Create builds a VM (and starts it if req.Start).
func (c *Client) Create(ctx context.Context, req api.CreateRequest) (api.VM, error) {
	var v api.VM
	return v, c.do(ctx, "POST", "/v1/vms", req, &v)
}

// Get returns VM id.
func (c *Client) Get(ctx context.Context, id string) (api.VM, error) {
	var v api.VM
	return v, c.do(ctx, "GET", "/v1/vms/"+url.PathEscape(id), nil, &v)
}

// Delete stops VM id and releases it.
func (c *Client) Delete(ctx context.Context, id string) error {
	return c.do(ctx, "DELETE", "/v1/vms/"+url.PathEscape(id), nil, nil)
}

// Action makes a lifecycle transition: start, pause, resume, wake or stop.
func (c *Client) Action(ctx context.Context, id, action string) (api.VM, error) {
	var v api.VM
	return v, c.do(ctx, "POST", "/v1/vms/"+url.PathEscape(id)+"/"+action, nil, &v)
}

// Restart rebuilds VM id (from cfg if not nil) and starts it.
func (c *Client) Restart(ctx context.Context, id string, cfg *machine.Config) (api.VM, error) {
	var v api.VM
	var in any
	if cfg != nil {
		in = api.RestartRequest{Config: cfg}
	}
	return v, c.do(ctx, "POST", "/v1/vms/"+url.PathEscape(id)+"/restart", in, &v)
}

// ConsoleLog returns the last output of VM id's console.
func (c *Client) ConsoleLog(ctx context.Context, id string) ([]byte, error) {
	return c.text(ctx, "/v1/vms/"+url.PathEscape(id)+"/console")
}

// Log returns VM id's log.
func (c *Client) Log(ctx context.Context, id string) (string, error) {
	b, err := c.text(ctx, "/v1/vms/"+url.PathEscape(id)+"/log")
	return string(b), err
}

// State returns what VM id's machine is doing now, as text: every vCPU's
// registers, pending events and LAPIC, the interrupt controllers, COM1 and
// the virtio queues (the daemon pauses a running VM for the moment it takes).
func (c *Client) State(ctx context.Context, id string) (string, error) {
	b, err := c.text(ctx, "/v1/vms/"+url.PathEscape(id)+"/state")
	return string(b), err
}

// Metrics returns the daemon's Prometheus metrics.
func (c *Client) Metrics(ctx context.Context) (string, error) {
	b, err := c.text(ctx, "/metrics")
	return string(b), err
}

// text GETs a non-JSON body.
func (c *Client) text(ctx context.Context, path string) ([]byte, error) {
	res, err := c.send(ctx, "GET", path, nil)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	return io.ReadAll(res.Body)
}

// Hypercall makes an ACRN hypercall as the Service VM on the daemon.
func (c *Client) Hypercall(ctx context.Context, req api.HypercallRequest) (api.HypercallResponse, error) {
	var r api.HypercallResponse
	return r, c.do(ctx, "POST", "/v1/hypercall", req, &r)
}

// Events streams the daemon's events (only VM vm's if vm is not empty) to
// fn until ctx ends, the daemon ends the stream, or fn returns false.
func (c *Client) Events(ctx context.Context, vm string, fn func(api.Event) bool) error {
	path := "/v1/events"
	if vm != "" {
		path += "?vm=" + url.QueryEscape(vm)
	}
	res, err := c.send(ctx, "GET", path, nil)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue // keep-alive
		}
		var e api.Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return fmt.Errorf("ember daemon: event: %w", err)
		}
		if !fn(e) {
			return nil
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return sc.Err()
}

// Console connects to VM id's console: reads return the console's history
// and then its output as it comes, writes go to the guest's console input.
// Close ends the session (the VM runs on).
func (c *Client) Console(ctx context.Context, id string) (net.Conn, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", c.socket)
	if err != nil {
		return nil, c.unreachable(err)
	}
	fmt.Fprintf(conn, "GET /v1/vms/%s/console HTTP/1.1\r\nHost: ember\r\nConnection: Upgrade\r\nUpgrade: %s\r\n\r\n", url.PathEscape(id), api.ConsoleUpgrade)
	br := bufio.NewReader(conn)
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("ember daemon: console: %w", err)
	}
	if res.StatusCode != http.StatusSwitchingProtocols {
		defer conn.Close()
		return nil, decodeError(res)
	}
	return &bufferedConn{Conn: conn, r: br}, nil
}

// bufferedConn reads what the response reader had already buffered first.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (b *bufferedConn) Read(p []byte) (int, error) { return b.r.Read(p) }

// Balloon returns VM id's balloon.
func (c *Client) Balloon(ctx context.Context, id string) (api.Balloon, error) {
	var b api.Balloon
	return b, c.do(ctx, "GET", "/v1/vms/"+url.PathEscape(id)+"/balloon", nil, &b)
}

// SetBalloon sets VM id's balloon target ("64M").
func (c *Client) SetBalloon(ctx context.Context, id, target string) (api.Balloon, error) {
	var b api.Balloon
	return b, c.do(ctx, "PUT", "/v1/vms/"+url.PathEscape(id)+"/balloon", api.BalloonUpdate{Target: target}, &b)
}
