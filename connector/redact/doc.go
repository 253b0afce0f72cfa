// Package redact hides the secrets of URIs (sinks, lock databases, source
// manifests), so that a URI can appear in messages, logs, errors and HTTP
// answers. It uses the standard library only (no cgo), so sources, sinks and
// the sink registry share it.
//
// # Contract
//
//   - URI(uri) returns uri with every secret replaced by xxxxx: the
//     password of the userinfo (as url.URL.Redacted does) and the value of
//     every query parameter whose name carries a secret (password,
//     sslpassword, token, secret, api_key, access and secret keys, …;
//     matched case-insensitively, percent-decoded, see IsSecretKey). The
//     rest of the URI is kept as written (not re-encoded). A string that
//     does not parse is still redacted (best effort that errs towards
//     masking too much), as is a keyword/value DSN ("host=… password=…").
//   - Scrub(text, uri) replaces in text every secret value that uri carries
//     (raw and percent-encoded): for error messages of libraries that echo
//     the URI, or part of it, as they got it.
//   - Both are pure functions, safe for concurrent use.
package redact
