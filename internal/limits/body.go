package limits

import (
	"io"
	"net/http"
)

// Reader returns r limited to max bytes: reading past max fails with a
// *TooLargeError naming what, so that a huge answer is never buffered
// whole, and the reader of a truncated document cannot mistake it for a
// complete one.
func Reader(r io.Reader, max int64, what string) io.Reader {
	return &limitedReader{r: r, left: max, max: max, what: what}
}

type limitedReader struct {
	r    io.Reader
	left int64
	max  int64
	what string
	err  error
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.err != nil {
		return 0, l.err
	}
	if l.left <= 0 {
		// One byte more tells "exactly max" from "more than max".
		var one [1]byte
		n, err := l.r.Read(one[:])
		if n > 0 {
			l.err = &TooLargeError{What: l.what, Limit: l.max}
			return 0, l.err
		}
		return 0, err
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	return n, err
}

type limitedBody struct {
	io.Reader
	c io.Closer
}

func (b limitedBody) Close() error { return b.c.Close() }

// Body wraps an HTTP response body with Reader.
func Body(rc io.ReadCloser, max int64, what string) io.ReadCloser {
	if rc == nil || rc == http.NoBody {
		return rc
	}
	return limitedBody{Reader: Reader(rc, max, what), c: rc}
}

// Transport returns base (http.DefaultTransport when nil) with every
// response body limited to max bytes (see Reader). The error names the method and host,
// not the path or query (which may carry a secret's name chosen by a
// tenant, harmless, but also signed query parameters).
func Transport(base http.RoundTripper, max int64) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	if lt, ok := base.(*limitedTransport); ok && lt.max <= max {
		return lt
	}
	return &limitedTransport{base: base, max: max}
}

type limitedTransport struct {
	base http.RoundTripper
	max  int64
}

// CloseIdleConnections reaches the base transport, so that
// http.Client.CloseIdleConnections still closes the pooled connections of a
// capped client (a dropped Vault session relies on it).
func (t *limitedTransport) CloseIdleConnections() {
	if c, ok := t.base.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

func (t *limitedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	if err != nil || resp == nil {
		return resp, err
	}
	// Even with a Content-Length over the cap the error comes from the
	// body, read up to the cap: an error here would be retried by the
	// SDKs as a transport failure.
	resp.Body = Body(resp.Body, t.max, "the response of "+req.Method+" "+req.URL.Host)
	return resp, nil
}

// Client returns an *http.Client that sends through c's transport (or
// http.DefaultTransport) with response bodies limited to max; c's timeout,
// redirect policy and cookie jar are kept.
func Client(c *http.Client, max int64) *http.Client {
	var out http.Client
	if c != nil {
		out = *c
	}
	out.Transport = Transport(out.Transport, max)
	return &out
}
