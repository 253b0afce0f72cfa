// Package urlsource is a connector.Source for the images a URL manifest
// lists: a .jsonl, .csv or .tsv file (optionally .gz), local, at an
// http(s) URL or in a bucket (Options.ManifestSource), one item per line.
//
// # Manifest
//
// JSON Lines: one object per line; CSV/TSV: a header row. Columns: url
// (required, http or https), id (optional: the item's key; default the
// normalised URL: scheme and host lowercase, no default port, no
// fragment), sha256 (optional: the bytes must have it, else
// hash_mismatch); every other column is the item's metadata (JSON
// numbers, booleans and objects as their JSON text). A line that cannot
// be read (bad syntax, no url, a bad sha256, a key used twice) is not
// listed and makes the listing incomplete: List names it by line number
// and the connector deletes nothing. A URL that does not parse is listed
// and fails with bad_url when read.
//
// # Fetching
//
// Every listed entry is revalidated (connector.Entry.Revalidate): an item
// stored with an HTTP ETag or Last-Modified (kept in the row's etag and
// mtime) is fetched with If-None-Match / If-Modified-Since, and a 304
// costs no download and no inference; a 200 with the stored sha256 costs
// no inference (the connector's metadata-only update). At most
// Options.Concurrency fetches run at once, and Options.PerHost per host;
// each try has connect, header and total deadlines; bodies above
// Options.MaxBytes are refused (too_large); at most MaxRedirects
// redirects. 429 and 5xx answers, resets, truncated bodies and timeouts
// are retried with backoff and jitter (connector/retry), honouring
// Retry-After.
//
// Failures are *schema.ItemError with a class: bad_url,
// blocked_address, dns, connect, timeout, tls, http_4xx, http_5xx,
// too_many_redirects, too_large, truncated, not_an_image (the body sniffs
// as text or JSON, such as an HTML page served as .jpg), hash_mismatch,
// and opted_out: a policy skip recorded in the ledger when the server
// opts out of AI use (X-Robots-Tag noai or noimageai, also scoped as
// "imgvec: noai"; tdm-reservation: 1). 404 and 410 wrap
// connector.ErrGone (class gone): gone on two consecutive syncs, the item
// is deleted (within --max-delete).
//
// # SSRF guard
//
// Only http and https are fetched, without proxies. Guard checks every
// address in the dialer, after DNS resolution, for the first request and
// every redirect: loopback, RFC 1918, link-local (169.254.169.254
// included), CGNAT 100.64/10, ULA fc00::/7, IPv4-mapped and translated
// IPv6, unspecified, multicast and reserved addresses are refused
// (blocked_address) unless Guard.AllowPrivate (--allow-private-networks)
// or Guard.Allow (CIDRs) opens them.
//
// Read fetches the bytes as served; ReadItem (connector.ItemReader, what
// the pipeline calls) also applies the opt-out, sniffing and sha256
// checks and revalidates. Source is safe for concurrent use.
package urlsource
