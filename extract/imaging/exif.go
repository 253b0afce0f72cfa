package imaging

import (
	"bytes"
	"encoding/binary"
)

// Orientation parsing: a small parser that reads only the TIFF structure's
// IFD0 for tag 0x0112. Every read is bounds-checked against the slice, so it
// cannot panic or over-read; anything malformed means "no orientation" (1).

var exifPrefix = []byte("Exif\x00\x00")

// tiffOrientation returns the Orientation tag (1..8) of IFD0 in a TIFF
// structure (the body of an EXIF block, or a whole TIFF file), or 1.
func tiffOrientation(b []byte) int {
	b = bytes.TrimPrefix(b, exifPrefix)
	if len(b) < 8 {
		return 1
	}
	var bo binary.ByteOrder
	switch string(b[:2]) {
	case "II":
		bo = binary.LittleEndian
	case "MM":
		bo = binary.BigEndian
	default:
		return 1
	}
	if bo.Uint16(b[2:4]) != 42 {
		return 1
	}
	off := uint64(bo.Uint32(b[4:8]))
	if off+2 > uint64(len(b)) {
		return 1
	}
	n := uint64(bo.Uint16(b[off : off+2]))
	for i := uint64(0); i < n; i++ {
		e := off + 2 + 12*i
		if e+12 > uint64(len(b)) {
			return 1
		}
		if bo.Uint16(b[e:e+2]) != 0x0112 {
			continue
		}
		typ, count := bo.Uint16(b[e+2:e+4]), bo.Uint32(b[e+4:e+8])
		var v int
		switch {
		case typ == 3 && count >= 1: // SHORT
			v = int(bo.Uint16(b[e+8 : e+10]))
		case typ == 4 && count >= 1: // LONG (non-standard, seen in the wild)
			v = int(bo.Uint32(b[e+8 : e+12]))
		default:
			return 1
		}
		if v < 1 || v > 8 {
			return 1
		}
		return v
	}
	return 1
}

// jpegOrientation reads the first "Exif" APP1 segment before the first scan.
func jpegOrientation(b []byte) int {
	if len(b) < 4 || b[0] != 0xFF || b[1] != 0xD8 {
		return 1
	}
	p := 2
	for p+4 <= len(b) {
		if b[p] != 0xFF {
			return 1
		}
		m := b[p+1]
		if m == 0xFF { // fill byte
			p++
			continue
		}
		p += 2
		if m == 0x01 || (m >= 0xD0 && m <= 0xD7) {
			continue
		}
		if m == 0xDA || m == 0xD9 {
			return 1
		}
		if p+2 > len(b) {
			return 1
		}
		l := int(b[p])<<8 | int(b[p+1])
		if l < 2 || p+l > len(b) {
			return 1
		}
		seg := b[p+2 : p+l]
		if m == 0xE1 && bytes.HasPrefix(seg, exifPrefix) {
			return tiffOrientation(seg[len(exifPrefix):])
		}
		p += l
	}
	return 1
}

// pngChunks walks the chunk list. It returns the eXIf orientation and
// whether an IEND chunk was reached (a file without one was cut short).
func pngChunks(b []byte) (orientation int, complete bool) {
	orientation = 1
	p := 8
	for p+8 <= len(b) {
		l := uint64(binary.BigEndian.Uint32(b[p : p+4]))
		typ := string(b[p+4 : p+8])
		if uint64(p)+12+l > uint64(len(b)) {
			return orientation, false
		}
		data := b[p+8 : p+8+int(l)]
		switch typ {
		case "eXIf":
			orientation = tiffOrientation(data)
		case "IEND":
			return orientation, true
		}
		p += 12 + int(l)
	}
	return orientation, false
}

// webpInfo walks the RIFF chunks: the EXIF orientation, the largest frame
// size any VP8/VP8L/VP8X header announces (the decoder allocates from
// those), and whether the RIFF container is complete.
func webpInfo(b []byte) (orientation int, maxW, maxH int, complete bool) {
	orientation = 1
	if len(b) < 12 {
		return
	}
	riffLen := uint64(binary.LittleEndian.Uint32(b[4:8])) + 8
	complete = riffLen <= uint64(len(b))
	p := 12
	for p+8 <= len(b) {
		typ := string(b[p : p+4])
		l := uint64(binary.LittleEndian.Uint32(b[p+4 : p+8]))
		end := uint64(p) + 8 + l
		if end > uint64(len(b)) {
			end = uint64(len(b))
			complete = false
		}
		d := b[p+8 : end]
		var w, h int
		switch typ {
		case "EXIF":
			orientation = tiffOrientation(d)
		case "VP8X":
			if len(d) >= 10 {
				w = 1 + (int(d[4]) | int(d[5])<<8 | int(d[6])<<16)
				h = 1 + (int(d[7]) | int(d[8])<<8 | int(d[9])<<16)
			}
		case "VP8 ":
			if len(d) >= 10 {
				w = int(binary.LittleEndian.Uint16(d[6:8]) & 0x3fff)
				h = int(binary.LittleEndian.Uint16(d[8:10]) & 0x3fff)
			}
		case "VP8L":
			if len(d) >= 5 {
				v := binary.LittleEndian.Uint32(d[1:5])
				w = 1 + int(v&0x3fff)
				h = 1 + int((v>>14)&0x3fff)
			}
		}
		if int64(w)*int64(h) > int64(maxW)*int64(maxH) {
			maxW, maxH = w, h
		}
		p = int(end + end&1)
	}
	return
}

// orient applies EXIF orientation o (2..8) to img, returning a new image
// (from the pool); the old buffer is released. 1 or unknown returns img.
func orient(img RGB, o int) RGB {
	if o < 2 || o > 8 {
		return img
	}
	W, H := img.Width, img.Height
	ow, oh := W, H
	if o >= 5 {
		ow, oh = H, W
	}
	out := RGB{Width: ow, Height: oh, Pix: getBuf(3 * W * H)}
	src, dst := img.Pix, out.Pix
	for y := 0; y < oh; y++ {
		d := dst[3*ow*y : 3*ow*(y+1)]
		for x := 0; x < ow; x++ {
			var sx, sy int
			switch o {
			case 2: // mirror horizontal
				sx, sy = W-1-x, y
			case 3: // rotate 180
				sx, sy = W-1-x, H-1-y
			case 4: // mirror vertical
				sx, sy = x, H-1-y
			case 5: // transpose
				sx, sy = y, x
			case 6: // rotate 90 clockwise
				sx, sy = y, H-1-x
			case 7: // transverse
				sx, sy = W-1-y, H-1-x
			case 8: // rotate 90 counter-clockwise
				sx, sy = W-1-y, x
			}
			s := 3 * (sy*W + sx)
			d[3*x], d[3*x+1], d[3*x+2] = src[s], src[s+1], src[s+2]
		}
	}
	img.Release()
	return out
}
