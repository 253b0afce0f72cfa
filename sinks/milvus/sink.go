package milvus

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/milvus-io/milvus-sdk-go/v2/client"
	"github.com/milvus-io/milvus-sdk-go/v2/entity"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/imgvec/imgvec/migrations"
	"github.com/imgvec/imgvec/schema"
)

// Option tunes a Sink.
type Option func(*Sink)

// WithAutoMigrate sets what Open does with pending migrations (default
// migrations.AutoMigrateNever).
func WithAutoMigrate(mode migrations.AutoMigrate) Option {
	return func(s *Sink) { s.autoMigrate = mode }
}

// WithChunk overrides the URI's chunk_mb and writers (benchmarks).
func WithChunk(bytes, writers int) Option {
	return func(s *Sink) { s.cfg.chunkBytes, s.cfg.writers = bytes, writers }
}

// Sink writes to Milvus. See doc.go.
type Sink struct {
	cfg         config
	uri         string // as given: it holds no secrets (New refuses user info)
	autoMigrate migrations.AutoMigrate

	mu      sync.Mutex // guards the fields below
	c       client.Client
	model   *schema.ModelIdentity // nil: OpenRead
	items   map[string]itemColl   // model id → collection
	noAlias bool                  // the server refused aliases

	// beforeUpsert, when set (fault tests), is called before each item
	// chunk's first try, from the goroutine that sends it.
	beforeUpsert func()
}

// itemColl is one item collection: the vectors of one model id.
type itemColl struct {
	name    string
	version int
	description
}

// New validates uri (milvus://HOST:PORT?collection=NAME...) and reads the
// credentials from the environment; no I/O.
func New(uri string, opts ...Option) (*Sink, error) {
	cfg, err := parseURI(uri)
	if err != nil {
		return nil, err
	}
	s := &Sink{cfg: cfg, uri: uri}
	for _, o := range opts {
		o(s)
	}
	return s, nil
}

func (s *Sink) connect(ctx context.Context) error {
	if s.c != nil {
		return nil
	}
	cc := client.Config{Address: s.cfg.addr, DBName: s.cfg.db, Username: s.cfg.user, Password: s.cfg.pass, APIKey: s.cfg.token,
		RetryRateLimit: &client.RetryRateLimitOption{MaxRetry: 5, MaxBackoff: 2 * time.Second}}
	// Given DialOptions, the SDK drops its defaults: keep them.
	cc.DialOptions = append(append([]grpc.DialOption(nil), client.DefaultGrpcOpts...),
		grpc.WithChainUnaryInterceptor(statusInterceptor))
	if s.cfg.tls != nil {
		cc.DialOptions = append(cc.DialOptions, grpc.WithTransportCredentials(credentials.NewTLS(s.cfg.tls)))
	}
	// The SDK dials blocking: an unreachable server fails here, not never.
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	c, err := client.NewClient(cctx, cc)
	if err != nil {
		return fmt.Errorf("connect to Milvus at %s: %w", s.cfg.addr, scrub(err, s.cfg))
	}
	s.c = c
	return nil
}

// scrub removes the credentials from an error's text, should a server or
// library ever echo them.
func scrub(err error, cfg config) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	clean := msg
	for _, secret := range []string{cfg.pass, cfg.token} {
		if secret != "" {
			clean = strings.ReplaceAll(clean, secret, "xxxxx")
		}
	}
	if clean == msg {
		return err
	}
	return errors.New(clean)
}

// Open connects, applies migrations as WithAutoMigrate allows, finds or
// creates model's item collection and verifies it, and drops retired
// collections whose grace period has passed.
func (s *Sink) Open(ctx context.Context, model schema.ModelIdentity) error {
	if err := model.Validate(); err != nil {
		return fmt.Errorf("open milvus sink %s: %w", s.cfg.base, err)
	}
	return s.open(ctx, s.autoMigrate, &model)
}

// OpenRead opens a migrated store for Status, Search and Get; writes are
// refused.
func (s *Sink) OpenRead(ctx context.Context) error {
	return s.open(ctx, migrations.AutoMigrateNever, nil)
}

func (s *Sink) open(ctx context.Context, mode migrations.AutoMigrate, model *schema.ModelIdentity) (err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.model != nil || s.items != nil {
		return fmt.Errorf("milvus sink %s: already open", s.cfg.base)
	}
	if err := s.connect(ctx); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			s.closeLocked()
		}
	}()
	if err := s.checkServer(ctx); err != nil {
		return err
	}
	m, err := s.migrator()
	if err != nil {
		return err
	}
	if err := m.Ensure(ctx, mode, s.uri, nil); err != nil {
		return fmt.Errorf("open milvus sink %s: %w", s.cfg.base, err)
	}
	for _, want := range []*entity.Schema{failuresSchema(s.cfg.failuresName()), runsSchema(s.cfg.runsName())} {
		coll, err := s.c.DescribeCollection(ctx, want.CollectionName)
		if err != nil {
			return fmt.Errorf("open milvus sink %s: describe %s: %w", s.cfg.base, want.CollectionName, err)
		}
		if err := verify(ctx, s.c, coll, want, ""); err != nil {
			return err
		}
	}
	if err := s.discover(ctx); err != nil {
		return err
	}
	if model != nil {
		if err := s.ensureItems(ctx, *model); err != nil {
			return err
		}
		if err := s.dropExpired(ctx); err != nil {
			return err
		}
		s.model = model
	}
	names := []string{s.cfg.failuresName(), s.cfg.runsName()}
	for _, ic := range s.items {
		names = append(names, ic.name)
	}
	return loadAll(ctx, s.c, names...)
}

// discover lists the item collections (NAME_vN) and reads which model each
// holds from its meta row items/NAME_vN, or, for collections made before
// those rows, from its description (Milvus Lite keeps no descriptions).
func (s *Sink) discover(ctx context.Context) error {
	names, err := CollectionNames(ctx, s.c)
	if err != nil {
		return err
	}
	descs, err := s.metaScan(ctx, metaItemsPrefix)
	if err != nil {
		return err
	}
	items := map[string]itemColl{}
	for _, name := range names {
		v, ok := s.cfg.itemsVersion(name)
		if !ok {
			continue
		}
		raw, ok := descs[metaItemsPrefix+name]
		if !ok {
			full, err := s.c.DescribeCollection(ctx, name)
			if err != nil {
				return fmt.Errorf("describe collection %s: %w", name, err)
			}
			raw = full.Schema.Description
		}
		var d description
		if json.Unmarshal([]byte(raw), &d) != nil || d.Kind != "items" {
			return fmt.Errorf("%w: collection %s is not an imgvec item collection (no meta row %s%s, description %q); drop it or choose another ?collection= name",
				ErrIncompatible, name, metaItemsPrefix, name, raw)
		}
		if d.Schema > ItemsSchemaVersion {
			return fmt.Errorf("%w: collection %s has item schema %d, this build knows %d; upgrade imgvec", migrations.ErrUnknownVersion, name, d.Schema, ItemsSchemaVersion)
		}
		if prev, dup := items[d.ModelID]; dup && prev.version > v {
			continue // an older copy still in its grace period
		}
		items[d.ModelID] = itemColl{name: name, version: v, description: d}
	}
	s.items = items
	return nil
}

// ensureItems finds model's item collection and verifies it (dimension,
// primary key, fields, metric), or creates NAME_vN for it. The first item
// collection also gets the alias NAME that readers query.
func (s *Sink) ensureItems(ctx context.Context, model schema.ModelIdentity) error {
	d := description{Kind: "items", Schema: ItemsSchemaVersion, ModelID: model.ID(), Layer: model.Layer, Dim: model.Dim}
	if ic, ok := s.items[model.ID()]; ok {
		coll, err := s.c.DescribeCollection(ctx, ic.name)
		if err != nil {
			return fmt.Errorf("describe collection %s: %w", ic.name, err)
		}
		if got := dimOf(coll); got != model.Dim {
			return fmt.Errorf("%w: collection %s holds model %s with vector dimension %d, the model gives dimension %d; drop %s to re-embed",
				ErrIncompatible, ic.name, model.ID(), got, model.Dim, ic.name)
		}
		return verify(ctx, s.c, coll, itemsSchema(ic.name, d), Metric)
	}
	v := 1
	for _, ic := range s.items {
		v = max(v, ic.version+1)
	}
	idx, err := vectorIndex(s.cfg.index)
	if err != nil {
		return err
	}
	ic := itemColl{name: s.cfg.itemsName(v), version: v, description: d}
	// The meta row first: a collection never exists without it (a row
	// without its collection, left by a crash, is ignored and rewritten).
	desc, _ := json.Marshal(d)
	if err := s.metaPut(ctx, metaItemsPrefix+ic.name, string(desc)); err != nil {
		return err
	}
	if err := create(ctx, s.c, itemsSchema(ic.name, d), idx); err != nil {
		return err
	}
	s.items[model.ID()] = ic
	if _, ok, err := s.aliasTarget(ctx); err != nil {
		return err
	} else if !ok {
		return s.pointAlias(ctx, ic.name)
	}
	return nil
}

// Meta rows.
const (
	metaCurrent       = "current"  // the collection the alias points to
	metaRetiredPrefix = "retired/" // + collection: when it stopped being current
	// + collection + "/" + hash of a source: a run of that source into the
	// collection completed (the value is the source).
	metaCompletePrefix = "complete/"
	metaMigration      = "migration/"
	metaItemsPrefix    = "items/" // + collection: its description (JSON), what it holds
)

// aliasTarget returns the collection readers are pointed at (the "current"
// meta row, which mirrors the alias and stands in for it on servers
// without aliases).
func (s *Sink) aliasTarget(ctx context.Context) (string, bool, error) {
	v, ok, err := s.metaGet(ctx, metaCurrent)
	return v, ok, err
}

// pointAlias makes NAME (the alias) and the "current" meta row name coll.
// Milvus builds without aliases (milvus-lite) keep only the meta row.
func (s *Sink) pointAlias(ctx context.Context, coll string) error {
	if !s.noAlias {
		err := s.c.AlterAlias(ctx, coll, s.cfg.base)
		if err != nil {
			err = s.c.CreateAlias(ctx, coll, s.cfg.base)
		}
		if err != nil && unsupported(err) {
			s.noAlias = true
		} else if err != nil {
			return fmt.Errorf("point alias %s at %s: %w", s.cfg.base, coll, err)
		}
	}
	return s.metaPut(ctx, metaCurrent, coll)
}

// unsupported reports an error of a server that lacks a feature.
func unsupported(err error) bool {
	msg := strings.ToLower(err.Error())
	return strings.Contains(msg, "unimplemented") || strings.Contains(msg, "not support")
}

// switchTo is the blue/green switch after a complete run of source under
// the open model: the run is recorded as covering source in ic; the alias
// moves to ic once ic covers every source the current collection was
// complete for and still holds rows of (so a sink fed by several sources
// does not lose the others' items from the readers' view while they are
// re-embedded one source at a time), and the previous collection is
// retired (dropped by a later Open once the grace period has passed).
func (s *Sink) switchTo(ctx context.Context, ic itemColl, source string) error {
	if err := s.metaPut(ctx, completeKey(ic.name, source), source); err != nil {
		return err
	}
	cur, ok, err := s.aliasTarget(ctx)
	if err != nil || (ok && cur == ic.name) {
		return err
	}
	if ok {
		waiting, err := s.uncovered(ctx, cur, ic.name)
		if err != nil || len(waiting) > 0 {
			return err
		}
	}
	if err := s.pointAlias(ctx, ic.name); err != nil {
		return err
	}
	if ok {
		return s.metaPut(ctx, metaRetiredPrefix+cur, time.Now().UTC().Format(time.RFC3339Nano))
	}
	return nil
}

// completeKey is the meta row recording a complete run of source into
// coll (its value is the source; the key holds a hash, as sources can be
// longer than a primary key).
func completeKey(coll, source string) string {
	sum := sha256.Sum256([]byte(source))
	return metaCompletePrefix + coll + "/" + hex.EncodeToString(sum[:12])
}

// uncovered returns the sources that had a complete run into from, still
// have rows there, and have had none into to yet: the sources the alias
// switch from → to waits for.
func (s *Sink) uncovered(ctx context.Context, from, to string) ([]string, error) {
	had, err := s.metaScan(ctx, metaCompletePrefix+from+"/")
	if err != nil {
		return nil, err
	}
	have, err := s.metaScan(ctx, metaCompletePrefix+to+"/")
	if err != nil {
		return nil, err
	}
	covered := map[string]bool{}
	for _, src := range have {
		covered[src] = true
	}
	var waiting []string
	for _, src := range had {
		if covered[src] {
			continue
		}
		n, err := count(ctx, s.c, from, eq(fSource, src))
		if err != nil {
			return nil, err
		}
		if n > 0 {
			waiting = append(waiting, src)
		}
	}
	sort.Strings(waiting)
	return waiting, nil
}

// dropExpired drops collections retired longer than the grace period ago.
func (s *Sink) dropExpired(ctx context.Context) error {
	rows, err := s.metaScan(ctx, metaRetiredPrefix)
	if err != nil {
		return err
	}
	names := make([]string, 0, len(rows))
	for k := range rows {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		at, err := time.Parse(time.RFC3339Nano, rows[k])
		if err != nil || time.Since(at) < s.cfg.grace {
			continue
		}
		coll := strings.TrimPrefix(k, metaRetiredPrefix)
		if cur, _, _ := s.aliasTarget(ctx); cur == coll {
			continue // switched back to it meanwhile
		}
		if err := s.c.DropCollection(ctx, coll); err != nil && !notFound(err) {
			return fmt.Errorf("drop retired collection %s: %w", coll, err)
		}
		for id, ic := range s.items {
			if ic.name == coll {
				delete(s.items, id)
			}
		}
		done, err := s.metaScan(ctx, metaCompletePrefix+coll+"/")
		if err != nil {
			return err
		}
		keys := []string{k, metaItemsPrefix + coll}
		for key := range done {
			keys = append(keys, key)
		}
		if err := s.c.Delete(ctx, s.cfg.metaName(), "", inList(fID, keys)); err != nil {
			return fmt.Errorf("forget retired collection %s: %w", coll, err)
		}
	}
	return nil
}

func notFound(err error) bool {
	msg := strings.ToLower(err.Error())
	return strings.Contains(msg, "not found") || strings.Contains(msg, "not exist")
}

// Close releases the connection. It may be called more than once.
func (s *Sink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closeLocked()
}

func (s *Sink) closeLocked() error {
	s.model, s.items = nil, nil
	if s.c == nil {
		return nil
	}
	err := s.c.Close()
	s.c = nil
	return err
}

// state returns the client and item collections for a read, or an error
// when the sink is not open.
func (s *Sink) state() (client.Client, map[string]itemColl, *schema.ModelIdentity, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.c == nil || s.items == nil {
		return nil, nil, nil, fmt.Errorf("milvus sink %s: not open", s.cfg.base)
	}
	items := make(map[string]itemColl, len(s.items))
	for k, v := range s.items {
		items[k] = v
	}
	return s.c, items, s.model, nil
}

// ordered lists item collections with the open model's first, then newest
// first: the order in which a row of an id is looked for.
func ordered(items map[string]itemColl, model *schema.ModelIdentity) []itemColl {
	out := make([]itemColl, 0, len(items))
	for _, ic := range items {
		out = append(out, ic)
	}
	sort.Slice(out, func(i, j int) bool {
		if model != nil && (out[i].ModelID == model.ID()) != (out[j].ModelID == model.ID()) {
			return out[i].ModelID == model.ID()
		}
		return out[i].version > out[j].version
	})
	return out
}
