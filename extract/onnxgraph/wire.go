package onnxgraph

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"

	"google.golang.org/protobuf/encoding/protowire"
)

// field is one protobuf field as it appeared on the wire. raw is the whole
// field (tag and value) and b the payload of a length-delimited field; both
// are slices of the parsed input, never copies.
type field struct {
	num protowire.Number
	typ protowire.Type
	v   uint64 // varint and fixed values
	b   []byte // payload of a BytesType field
	raw []byte // tag and value
}

// parseFields splits a message into its fields. what names the message in
// errors; base is the message's offset in the whole input, for messages.
func parseFields(b []byte, what string, base int) ([]field, error) {
	var fs []field
	off := 0
	for off < len(b) {
		num, typ, n := protowire.ConsumeTag(b[off:])
		if n < 0 {
			return nil, wireErr(what, base+off, "field tag", n, len(b)-off)
		}
		f := field{num: num, typ: typ}
		var m int
		rest := b[off+n:]
		switch typ {
		case protowire.VarintType:
			f.v, m = protowire.ConsumeVarint(rest)
		case protowire.Fixed32Type:
			var x uint32
			x, m = protowire.ConsumeFixed32(rest)
			f.v = uint64(x)
		case protowire.Fixed64Type:
			f.v, m = protowire.ConsumeFixed64(rest)
		case protowire.BytesType:
			f.b, m = protowire.ConsumeBytes(rest)
		case protowire.StartGroupType:
			_, m = protowire.ConsumeGroup(num, rest)
		default:
			return nil, fmt.Errorf("%s: field %d at byte %d has invalid wire type %d: %w", what, num, base+off, typ, ErrNotONNX)
		}
		if m < 0 {
			return nil, wireErr(what, base+off, fmt.Sprintf("field %d", num), m, len(rest))
		}
		f.raw = b[off : off+n+m]
		fs = append(fs, f)
		off += n + m
	}
	return fs, nil
}

func wireErr(what string, at int, item string, code int, remain int) error {
	err := protowire.ParseError(code)
	if err == io.ErrUnexpectedEOF {
		return fmt.Errorf("%s: truncated: %s at byte %d runs past the end (%d bytes left): %w", what, item, at, remain, ErrTruncated)
	}
	return fmt.Errorf("%s: malformed %s at byte %d: %v: %w", what, item, at, err, ErrNotONNX)
}

// wantBytes checks that a field that must be a message or string is one.
func wantBytes(f field, what string) error {
	if f.typ != protowire.BytesType {
		return fmt.Errorf("%s: field %d has wire type %d, want length-delimited: %w", what, f.num, f.typ, ErrNotONNX)
	}
	return nil
}

func wantVarint(f field, what string) error {
	if f.typ != protowire.VarintType {
		return fmt.Errorf("%s: field %d has wire type %d, want varint: %w", what, f.num, f.typ, ErrNotONNX)
	}
	return nil
}

// int64s reads a repeated int64 field that may be packed or not.
func appendInt64s(dst []int64, f field, what string) ([]int64, error) {
	switch f.typ {
	case protowire.VarintType:
		return append(dst, int64(f.v)), nil
	case protowire.BytesType:
		b := f.b
		for len(b) > 0 {
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return nil, fmt.Errorf("%s: bad packed int64 in field %d: %w", what, f.num, ErrNotONNX)
			}
			dst = append(dst, int64(v))
			b = b[n:]
		}
		return dst, nil
	}
	return nil, fmt.Errorf("%s: field %d has wire type %d, want int64: %w", what, f.num, f.typ, ErrNotONNX)
}

func appendFloats(dst []float32, f field, what string) ([]float32, error) {
	switch f.typ {
	case protowire.Fixed32Type:
		return append(dst, math.Float32frombits(uint32(f.v))), nil
	case protowire.BytesType:
		if len(f.b)%4 != 0 {
			return nil, fmt.Errorf("%s: packed float field %d has %d bytes: %w", what, f.num, len(f.b), ErrNotONNX)
		}
		for i := 0; i < len(f.b); i += 4 {
			dst = append(dst, math.Float32frombits(binary.LittleEndian.Uint32(f.b[i:])))
		}
		return dst, nil
	}
	return nil, fmt.Errorf("%s: field %d has wire type %d, want float: %w", what, f.num, f.typ, ErrNotONNX)
}

// Encoding helpers.

func putString(b []byte, num protowire.Number, s string) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

func putBytes(b []byte, num protowire.Number, p []byte) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, p)
}

func putVarint(b []byte, num protowire.Number, v uint64) []byte {
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

func putFloat(b []byte, num protowire.Number, f float32) []byte {
	b = protowire.AppendTag(b, num, protowire.Fixed32Type)
	return protowire.AppendFixed32(b, math.Float32bits(f))
}

func putPackedInt64s(b []byte, num protowire.Number, vs []int64) []byte {
	var p []byte
	for _, v := range vs {
		p = protowire.AppendVarint(p, uint64(v))
	}
	return putBytes(b, num, p)
}

func putPackedFloats(b []byte, num protowire.Number, vs []float32) []byte {
	p := make([]byte, 0, 4*len(vs))
	for _, v := range vs {
		p = binary.LittleEndian.AppendUint32(p, math.Float32bits(v))
	}
	return putBytes(b, num, p)
}

// chunks is an encoded message held as a list of parts, so that big payloads
// (initializer data) are written straight from the input, or generated while
// writing, instead of being copied into one buffer.
type chunks struct {
	parts []part
	n     int
}

type part struct {
	b   []byte
	gen func(w io.Writer) error // writes exactly n bytes
	n   int
}

func (c *chunks) add(b []byte) {
	if len(b) == 0 {
		return
	}
	c.parts = append(c.parts, part{b: b, n: len(b)})
	c.n += len(b)
}

func (c *chunks) addGen(n int, gen func(w io.Writer) error) {
	c.parts = append(c.parts, part{gen: gen, n: n})
	c.n += n
}

// addMsg appends sub as a length-delimited field.
func (c *chunks) addMsg(num protowire.Number, sub *chunks) {
	h := protowire.AppendTag(nil, num, protowire.BytesType)
	h = protowire.AppendVarint(h, uint64(sub.n))
	c.add(h)
	c.parts = append(c.parts, sub.parts...)
	c.n += sub.n
}

func (c *chunks) writeTo(w io.Writer) (int64, error) {
	var total int64
	for _, p := range c.parts {
		if p.gen != nil {
			cw := &countWriter{w: w}
			if err := p.gen(cw); err != nil {
				return total + cw.n, err
			}
			if cw.n != int64(p.n) {
				return total + cw.n, fmt.Errorf("onnxgraph: internal: generated %d bytes, declared %d", cw.n, p.n)
			}
			total += cw.n
			continue
		}
		n, err := w.Write(p.b)
		total += int64(n)
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

type bufWriter struct{ b []byte }

func (w *bufWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}
