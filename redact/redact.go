// Package redact keeps secrets out of what people see: the password in a
// URL or DSN (amqp://, postgres://, https://), and the secrets named in an
// error's text. Logs, errors and `taskotron config` go through it. It
// imports no other package of the project.
package redact

import "strings"

// Mask replaces a secret wherever it is shown.
const Mask = "***"

// URL is u with the password of its user info masked: scheme://user:***@host…
// It works on text that does not parse as a URL too (a bad port, a stray
// character), since those are the URLs that end up in error messages.
func URL(u string) string {
	user, pass, ok := userinfo(u)
	if !ok || pass == "" {
		return u
	}
	scheme := strings.Index(u, "://")
	at := scheme + 3 + len(user) + 1 + len(pass)
	return u[:scheme+3] + user + ":" + Mask + u[at:]
}

// Password is the password a URL's user info holds, or "".
func Password(u string) string {
	_, pass, _ := userinfo(u)
	return pass
}

// userinfo splits scheme://user:password@… without parsing the rest, which
// may be broken. The user info runs to the last '@' before a query or
// fragment: a password may hold a '/', a path hardly an '@'.
func userinfo(u string) (user, pass string, ok bool) {
	scheme := strings.Index(u, "://")
	if scheme < 0 {
		return "", "", false
	}
	rest := u[scheme+3:]
	if end := strings.IndexAny(rest, "?#"); end >= 0 {
		rest = rest[:end]
	}
	at := strings.LastIndex(rest, "@")
	if at < 0 {
		return "", "", false
	}
	user, pass, _ = strings.Cut(rest[:at], ":")
	return user, pass, true
}

// Error is err with every non-empty secret masked in its text; errors.Is and
// errors.As still see the cause.
func Error(err error, secrets ...string) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	masked := msg
	for _, s := range secrets {
		if s != "" {
			masked = strings.ReplaceAll(masked, s, Mask)
		}
	}
	if masked == msg {
		return err
	}
	return &maskedError{msg: masked, err: err}
}

// URLError is err with the password of rawURL masked in its text.
func URLError(err error, rawURL string) error {
	return Error(err, Password(rawURL))
}

type maskedError struct {
	msg string
	err error
}

func (e *maskedError) Error() string { return e.msg }
func (e *maskedError) Unwrap() error { return e.err }
