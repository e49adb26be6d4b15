// Package endpoint is the HTTP listener every service double serves on: a
// real socket, so clients under test speak their real protocol to it.
package endpoint

import (
	"fmt"
	"net"
	"net/http"
	"time"
)

// Endpoint serves one handler. Doubles embed it for URL and Close.
type Endpoint struct {
	srv *http.Server
	ln  net.Listener
}

// Serve listens on addr ("127.0.0.1:0" for any free port) and serves h;
// name says which double failed to listen.
func (e *Endpoint) Serve(name, addr string, h http.Handler) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	e.ln = ln
	e.srv = &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go e.srv.Serve(ln)
	return nil
}

// URL is the base URL the double answers at.
func (e *Endpoint) URL() string { return "http://" + e.ln.Addr().String() }

// Close stops serving; closing a double that never started is fine.
func (e *Endpoint) Close() error {
	if e.srv == nil {
		return nil
	}
	return e.srv.Close()
}
