package resultsdb

import (
	"net"
	"net/http"
	"strings"
	"unicode/utf8"
)

// Links as ResultsDB 2.2 (Flask 3, Werkzeug 3) writes them, so that a
// client comparing or following them cannot tell the servers apart.

// Werkzeug's safe sets: what url_for leaves unquoted in a path
// (BaseConverter.to_url, '/' included, so a testcase name keeps its
// slashes) and in a query value (urlencode), and what request.url keeps
// of the request's path and query before it unquotes them again.
const (
	hrefPathSafe   = "!$&'()*+,/:;=@"
	hrefQuerySafe  = "!$'()*,/:;?@"
	urlPathSafe    = "!$&'()*+,/:;=@%"
	urlQuerySafe   = "!$&'()*+,/:;=?@%"
	alwaysQuoted   = "%\x7f"               // with controls and space
	pathStayQuoted = alwaysQuoted + "/?#"  // uri_to_iri keeps these quoted in a path
	queryStayQuote = alwaysQuoted + "&=+#" // and these in a query
	hexDigits      = "0123456789ABCDEF"
)

// pyQuote is Python's urllib.parse.quote (quote_plus when plus): letters,
// digits, "_.-~" and safe stay, every other byte becomes %XX.
func pyQuote(s, safe string, plus bool) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '_', c == '.', c == '-', c == '~':
			b.WriteByte(c)
		case plus && c == ' ':
			b.WriteByte('+')
		case c < utf8.RuneSelf && strings.IndexByte(safe, c) >= 0:
			b.WriteByte(c)
		default:
			b.WriteByte('%')
			b.WriteByte(hexDigits[c>>4])
			b.WriteByte(hexDigits[c&15])
		}
	}
	return b.String()
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// toIRI unquotes s as Werkzeug's uri_to_iri does one part of a URL: every
// %XX that makes valid UTF-8 becomes its character, except controls,
// space and the characters of stay, which keep their escape as written;
// bytes that are not UTF-8 stay quoted (in upper case).
func toIRI(s, stay string) string {
	var out strings.Builder
	var pending []byte // unquoted bytes, written once they end
	flush := func() {
		for len(pending) > 0 {
			r, n := utf8.DecodeRune(pending)
			if r == utf8.RuneError && n <= 1 {
				out.WriteString("%" + string(hexDigits[pending[0]>>4]) + string(hexDigits[pending[0]&15]))
				pending = pending[1:]
				continue
			}
			out.Write(pending[:n])
			pending = pending[n:]
		}
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '%' && i+2 < len(s) {
			hi, ok1 := unhex(s[i+1])
			lo, ok2 := unhex(s[i+2])
			if ok1 && ok2 {
				b := hi<<4 | lo
				if b <= ' ' || strings.IndexByte(stay, b) >= 0 {
					flush()
					out.WriteString(s[i : i+3])
				} else {
					pending = append(pending, b)
				}
				i += 2
				continue
			}
		}
		pending = append(pending, c)
	}
	flush()
	return out.String()
}

// requestURL is the URL of this request as Werkzeug's request.url shows
// it, which ResultsDB's prev and next links are made from.
func (s *server) requestURL(r *http.Request) string {
	u := s.base(r) + "/" + toIRI(pyQuote(strings.TrimLeft(r.URL.Path, "/"), urlPathSafe, false), pathStayQuoted)
	if r.URL.RawQuery != "" {
		u += "?" + toIRI(pyQuote(r.URL.RawQuery, urlQuerySafe, false), queryStayQuote)
	}
	return u
}

// base is the URL links start with: the configured one, else the one the
// client asked for. Behind a proxy that is X-Forwarded-Host (the first,
// the client's) and X-Forwarded-Scheme, as ResultsDB's ReverseProxied
// reads them, or X-Forwarded-Proto, which most proxies send.
func (s *server) base(r *http.Request) string {
	if s.opts.BaseURL != "" {
		return s.opts.BaseURL
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	for _, h := range []string{"X-Forwarded-Scheme", "X-Forwarded-Proto"} {
		if v := strings.ToLower(firstValue(r.Header.Get(h))); v == "http" || v == "https" {
			scheme = v
			break
		}
	}
	host := r.Host
	if fh := firstValue(r.Header.Get("X-Forwarded-Host")); validHost(fh) {
		host = fh
	}
	host = strings.ToLower(host)
	// As Werkzeug's get_host: the default port is left out.
	if scheme == "http" {
		host = strings.TrimSuffix(host, ":80")
	} else {
		host = strings.TrimSuffix(host, ":443")
	}
	return scheme + "://" + host
}

func firstValue(h string) string {
	v, _, _ := strings.Cut(h, ",")
	return strings.TrimSpace(v)
}

// validHost accepts host, host:port, [v6] and [v6]:port; anything else a
// proxy header holds is ignored rather than put into links.
func validHost(h string) bool {
	if h == "" || strings.ContainsAny(h, "/?#@\\%\"<> \t") {
		return false
	}
	host := h
	if i := strings.LastIndexByte(h, ':'); i >= 0 && !strings.HasSuffix(h, "]") {
		port := h[i+1:]
		if port == "" || strings.Trim(port, "0123456789") != "" {
			return false
		}
		host = h[:i]
	}
	if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
		return net.ParseIP(host[1:len(host)-1]) != nil
	}
	return host != "" && !strings.ContainsAny(host, ":[]")
}
