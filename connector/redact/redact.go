package redact

import (
	"net/url"
	"regexp"
	"slices"
	"strings"
)

// Mask replaces every secret.
const Mask = "xxxxx"

// secretWords are the parts of a parameter name that make its value a
// secret. Substrings, so that sslpassword, auth_token, client_secret or
// aws_secret_access_key are caught without a list of every spelling.
var secretWords = []string{"password", "passwd", "pwd", "secret", "token", "apikey", "api_key", "api-key",
	"access_key", "accesskey", "access-key", "credential", "signature", "private_key", "privatekey"}

// secretNames are whole names that are secrets but too short to match as
// substrings ("pass" would catch "passive", "sig" "signal").
var secretNames = []string{"pass", "sig", "key", "auth"}

// IsSecretKey reports whether a query parameter (or DSN keyword) named
// name carries a secret. The match ignores case.
func IsSecretKey(name string) bool {
	n := strings.ToLower(name)
	if slices.Contains(secretNames, n) {
		return true
	}
	for _, w := range secretWords {
		if strings.Contains(n, w) {
			return true
		}
	}
	return false
}

// URI returns uri with its secrets replaced by Mask (see the package
// doc).
func URI(uri string) string {
	scheme, rest, ok := strings.Cut(uri, "://")
	if !ok {
		return redactKeywords(uri)
	}
	// The query starts at the first '?' (a '#' before it ends the URI).
	end := strings.IndexAny(rest, "?#")
	if end < 0 {
		end = len(rest)
	}
	head, tail := redactUserinfo(rest[:end]), rest[end:]
	if q, ok := strings.CutPrefix(tail, "?"); ok {
		q, frag, hasFrag := strings.Cut(q, "#")
		tail = "?" + redactQuery(q)
		if hasFrag {
			tail += "#" + frag
		}
	}
	return scheme + "://" + head + tail
}

// redactUserinfo masks the password of USER:PASSWORD@HOST/PATH. The
// userinfo ends at the last '@' (a password may hold an unescaped '/' or
// '@'); a '/' before the ':' means there is no userinfo, only a path.
func redactUserinfo(s string) string {
	at := strings.LastIndexByte(s, '@')
	if at < 0 {
		return s
	}
	colon := strings.IndexByte(s[:at], ':')
	if colon < 0 || strings.ContainsRune(s[:colon], '/') {
		return s
	}
	return s[:colon+1] + Mask + s[at:]
}

// redactQuery masks the values of secret parameters of a raw query.
func redactQuery(q string) string {
	params := strings.Split(q, "&")
	for i, p := range params {
		k, _, hasValue := strings.Cut(p, "=")
		if !hasValue {
			continue
		}
		name, err := url.QueryUnescape(k)
		if err != nil {
			name = k
		}
		if IsSecretKey(name) {
			params[i] = k + "=" + Mask
		}
	}
	return strings.Join(params, "&")
}

// keyword matches KEY=VALUE of a keyword/value DSN; a value may be quoted
// with ' (with \' inside).
var keyword = regexp.MustCompile(`([A-Za-z_][A-Za-z0-9_.-]*)\s*=\s*('(?:[^'\\]|\\.)*'?|[^\s&]*)`)

// redactKeywords masks the secret values of a keyword/value DSN, or of
// any text that is not a URI.
func redactKeywords(s string) string {
	return keyword.ReplaceAllStringFunc(s, func(kv string) string {
		m := keyword.FindStringSubmatch(kv)
		if !IsSecretKey(m[1]) {
			return kv
		}
		return kv[:len(kv)-len(m[2])] + Mask
	})
}

// secrets returns the secret values uri carries, raw and decoded.
func secrets(uri string) []string {
	var out []string
	add := func(v string) {
		if v == "" || v == Mask {
			return
		}
		out = append(out, v)
		if d, err := url.QueryUnescape(v); err == nil && d != v {
			out = append(out, d)
		}
		if d, err := url.PathUnescape(v); err == nil && d != v {
			out = append(out, d)
		}
	}
	if _, rest, ok := strings.Cut(uri, "://"); ok {
		end := strings.IndexAny(rest, "?#")
		if end < 0 {
			end = len(rest)
		}
		head := rest[:end]
		if at := strings.LastIndexByte(head, '@'); at >= 0 {
			if colon := strings.IndexByte(head[:at], ':'); colon >= 0 && !strings.ContainsRune(head[:colon], '/') {
				add(head[colon+1 : at])
			}
		}
		if q, ok := strings.CutPrefix(rest[end:], "?"); ok {
			q, _, _ = strings.Cut(q, "#")
			for _, p := range strings.Split(q, "&") {
				k, v, _ := strings.Cut(p, "=")
				if name, err := url.QueryUnescape(k); (err == nil && IsSecretKey(name)) || IsSecretKey(k) {
					add(v)
				}
			}
		}
		return out
	}
	for _, m := range keyword.FindAllStringSubmatch(uri, -1) {
		if IsSecretKey(m[1]) {
			v := m[2]
			add(v)
			if len(v) >= 2 && v[0] == '\'' {
				add(strings.Trim(v, "'"))
			}
		}
	}
	return out
}

// Scrub replaces in text every secret value of uri by Mask, in the forms a
// message may quote it: as written, decoded, and escaped again.
func Scrub(text, uri string) string {
	vals := secrets(uri)
	for _, v := range slices.Clone(vals) {
		vals = append(vals, url.QueryEscape(v), url.PathEscape(v))
	}
	// Longest first, so that a value is not half-replaced by a shorter
	// one it contains.
	slices.SortFunc(vals, func(a, b string) int { return len(b) - len(a) })
	for _, v := range vals {
		text = strings.ReplaceAll(text, v, Mask)
	}
	return text
}
