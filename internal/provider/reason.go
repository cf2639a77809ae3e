package provider

import "errors"

// Reasoned carries the Reason of a failure, decided where it happened, to
// the *Error built from it (see Fail).
type Reasoned struct {
	Reason Reason
	Err    error
}

func (r *Reasoned) Error() string { return r.Err.Error() }
func (r *Reasoned) Unwrap() error { return r.Err }

// WithReason returns err carrying reason.
func WithReason(reason Reason, err error) error { return &Reasoned{Reason: reason, Err: err} }

// summary is an error whose message the provider wrote.
type summary struct {
	msg string
	err error
}

func (s *summary) Error() string { return s.msg }
func (s *summary) Unwrap() error { return s.err }

// Summarize returns an error with the message msg, written by the provider,
// that wraps err (an SDK's or a server's error, which it summarises): the
// chain keeps err for errors.Is and errors.As, while no server can put
// content, such as a response body, into a message.
func Summarize(msg string, err error) error { return &summary{msg: msg, err: err} }

// Fail builds the *Error of a failure of one object of class (object ""
// for the class as a whole) in provider: its Reason and cause come from the
// first Reasoned in err's chain, else the Reason is ReasonUnknown.
func Fail(class, provider, object string, err error) *Error {
	reason := ReasonUnknown
	var r *Reasoned
	if errors.As(err, &r) {
		reason, err = r.Reason, r.Err
	}
	return &Error{Class: class, Provider: provider, Object: object, Reason: reason, Err: err}
}
