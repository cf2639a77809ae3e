package provider

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// ErrRedirectRefused is wrapped by the error of a redirect that
// CheckRedirect refuses.
var ErrRedirectRefused = errors.New("redirect refused")

// maxRedirects is how many same-host redirects one request may follow, as
// many as net/http's default policy.
const maxRedirects = 10

// CheckRedirect is the http.Client redirect policy of every provider: a
// redirect is followed only to the scheme and host (with port) of the
// original request, so that a backend (or whoever answers for it) cannot
// send the request, with its token header, to another host, nor have the
// response of an internal endpoint written into a tenant's volume. The
// error names hosts only, never a path or a query.
func CheckRedirect(req *http.Request, via []*http.Request) error {
	if len(via) == 0 {
		return nil
	}
	from := via[0].URL
	if len(via) >= maxRedirects {
		return fmt.Errorf("%w: more than %d redirects from %s", ErrRedirectRefused, maxRedirects, from.Host)
	}
	to := req.URL
	if !strings.EqualFold(from.Scheme, to.Scheme) || !strings.EqualFold(from.Host, to.Host) {
		return fmt.Errorf("%w: %s://%s redirected to %s://%s; only redirects to the same host are followed", ErrRedirectRefused, from.Scheme, from.Host, to.Scheme, to.Host)
	}
	return nil
}

// SameHostClient returns a copy of c (a new client on
// http.DefaultTransport when c is nil) whose redirects CheckRedirect
// governs.
func SameHostClient(c *http.Client) *http.Client {
	out := &http.Client{}
	if c != nil {
		cp := *c
		out = &cp
	}
	out.CheckRedirect = CheckRedirect
	return out
}
