package extsort

import (
	"encoding/binary"
	"errors"
	"time"
)

// AppendString, AppendInt and AppendTime append the encodings a Decoder
// reads back: the building blocks of a Config's Encode.

// AppendString appends s, length first.
func AppendString(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

// AppendInt appends v as a varint.
func AppendInt(b []byte, v int64) []byte { return binary.AppendVarint(b, v) }

// AppendTime appends t to the nanosecond; the zero time stays zero. Its
// location is not kept (a Decoder returns UTC).
func AppendTime(b []byte, t time.Time) []byte {
	if t.IsZero() {
		return append(b, 0)
	}
	b = append(b, 1)
	return binary.AppendUvarint(binary.AppendVarint(b, t.Unix()), uint64(t.Nanosecond()))
}

var errShort = errors.New("record truncated")

// Decoder reads back what the Append functions wrote, in the same order.
// After the first problem every read returns a zero value and Err says
// what went wrong.
type Decoder struct {
	b   []byte
	err error
}

// NewDecoder reads b.
func NewDecoder(b []byte) *Decoder { return &Decoder{b: b} }

// Err is the first problem met, or, when everything was read, an error if
// bytes are left over.
func (d *Decoder) Err() error {
	if d.err == nil && len(d.b) > 0 {
		return errors.New("record has trailing bytes")
	}
	return d.err
}

// String reads a string (a copy).
func (d *Decoder) String() string {
	n := d.uvarint()
	if d.err != nil || uint64(len(d.b)) < n {
		d.fail()
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

// Int reads a varint.
func (d *Decoder) Int() int64 { return readVarint(d, binary.Varint) }

// Time reads a time, in UTC.
func (d *Decoder) Time() time.Time {
	if d.err != nil || len(d.b) == 0 {
		d.fail()
		return time.Time{}
	}
	set := d.b[0]
	d.b = d.b[1:]
	if set == 0 {
		return time.Time{}
	}
	sec := d.Int()
	nsec := d.uvarint()
	if d.err != nil {
		return time.Time{}
	}
	return time.Unix(sec, int64(nsec)).UTC()
}

func (d *Decoder) uvarint() uint64 { return readVarint(d, binary.Uvarint) }

// readVarint reads one signed or unsigned varint with decode
// (binary.Varint or binary.Uvarint): both kinds share the error and
// advance rules, so they share this code.
func readVarint[T int64 | uint64](d *Decoder, decode func([]byte) (T, int)) T {
	if d.err != nil {
		return 0
	}
	v, n := decode(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *Decoder) fail() {
	if d.err == nil {
		d.err = errShort
	}
}
