package imaging

import "bytes"

// JPEG markers the scan filter reads.
const (
	markerSOF2 = 0xC2 // progressive, Huffman
	markerSOS  = 0xDA
	markerEOI  = 0xD9
	markerRST0 = 0xD0
	markerRST7 = 0xD7
)

// maxProgressiveScans is TJFLAG_LIMITSCANS' limit: a file with more scans
// is left to the full decoder, which rejects it.
const maxProgressiveScans = 500

// progressiveDCStream returns a copy of a progressive JPEG that keeps every
// marker segment but only the scans a decode at 1/8 scale reads, for
// Spec.FastJPEG.
//
// Why it gives the same pixels: at 1/8 scale libjpeg reconstructs a block
// of a component decoded at 1×1 (jpeg_idct_1x1) from its DC coefficient
// alone, so the AC scans of such a component change nothing of the output.
// Which components are decoded at 1×1 follows libjpeg's rule
// (jpeg_core_output_dimensions): a component's DCT size doubles from the
// minimum while the maximum sampling factors are multiples of its own times
// twice that size in both directions; with 4:2:0 the chroma is decoded at
// 2×2, which reads AC coefficients, so its AC scans are kept. The block
// smoothing libjpeg applies to coefficients it never received touches only
// AC values (and the caller turns it off). In a typical photo most of the
// entropy-coded data is in the luma AC scans, which are skipped unread.
//
// ok=false (not a progressive file, a malformed or truncated segment
// structure, more than maxProgressiveScans scans, nothing to skip) leaves
// the file to the full decoder.
func progressiveDCStream(data []byte) (out []byte, ok bool) {
	if len(data) < 4 || data[0] != 0xFF || data[1] != 0xD8 {
		return nil, false
	}
	dcOnly := map[byte]bool{} // component id -> decoded at 1×1 at 1/8 scale
	var kept [][2]int         // byte ranges of data to copy, in order
	scans, skipped := 0, 0
	i := 2
	for {
		// Fill bytes (0xFF runs) may precede a marker.
		for i+1 < len(data) && data[i] == 0xFF && data[i+1] == 0xFF {
			i++
		}
		if i+1 >= len(data) || data[i] != 0xFF {
			return nil, false
		}
		marker := data[i+1]
		if marker == markerEOI {
			break
		}
		if i+4 > len(data) {
			return nil, false
		}
		end := i + 2 + (int(data[i+2])<<8 | int(data[i+3]))
		if end > len(data) || end < i+4 {
			return nil, false
		}
		switch {
		case marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC:
			// A start of frame: only progressive Huffman (SOF2) qualifies.
			if marker != markerSOF2 || !frameDCOnly(data[i+4:end], dcOnly) {
				return nil, false
			}
			kept = append(kept, [2]int{i, end})
			i = end
		case marker == markerSOS:
			if len(dcOnly) == 0 {
				return nil, false // a scan before the frame header
			}
			scans++
			if scans > maxProgressiveScans {
				return nil, false
			}
			dataEnd := entropyEnd(data, end)
			if dataEnd < 0 {
				return nil, false
			}
			if scanNeeded(data[i+4:end], dcOnly) {
				kept = append(kept, [2]int{i, dataEnd})
			} else {
				skipped++
			}
			i = dataEnd
		default:
			kept = append(kept, [2]int{i, end})
			i = end
		}
	}
	if skipped == 0 {
		return nil, false
	}
	n := 4
	for _, r := range kept {
		n += r[1] - r[0]
	}
	out = make([]byte, 0, n)
	out = append(out, 0xFF, 0xD8)
	for _, r := range kept {
		out = append(out, data[r[0]:r[1]]...)
	}
	return append(out, 0xFF, markerEOI), true
}

// frameDCOnly reads a SOF payload (precision, height, width, components
// with their sampling factors) into dcOnly: which components libjpeg
// decodes at 1×1 at 1/8 scale.
func frameDCOnly(sof []byte, dcOnly map[byte]bool) bool {
	if len(sof) < 6 {
		return false
	}
	nc := int(sof[5])
	if nc == 0 || len(sof) < 6+3*nc {
		return false
	}
	maxH, maxV := 1, 1
	for c := range nc {
		f := sof[6+3*c+1]
		h, v := int(f>>4), int(f&15)
		if h == 0 || v == 0 {
			return false
		}
		maxH, maxV = max(maxH, h), max(maxV, v)
	}
	for c := range nc {
		f := sof[6+3*c+1]
		h, v := int(f>>4), int(f&15)
		// libjpeg doubles the DCT size from 1 (the minimum at 1/8 scale)
		// while maxH % (h*2*size) == 0 and maxV % (v*2*size) == 0; at 1×1
		// only when the first doubling is refused.
		dcOnly[sof[6+3*c]] = maxH%(2*h) != 0 || maxV%(2*v) != 0
	}
	return true
}

// scanNeeded reports whether a scan (SOS payload: component ids, then
// Ss, Se, Ah/Al) carries data a 1/8-scale decode reads: every DC scan, and
// AC scans of components not decoded at 1×1.
func scanNeeded(sos []byte, dcOnly map[byte]bool) bool {
	if len(sos) < 1 {
		return true
	}
	ns := int(sos[0])
	if len(sos) < 1+2*ns+3 {
		return true
	}
	if sos[1+2*ns] == 0 { // Ss = 0: DC
		return true
	}
	for c := range ns {
		only, known := dcOnly[sos[1+2*c]]
		if !known || !only {
			return true
		}
	}
	return false
}

// entropyEnd returns the offset of the first marker after the
// entropy-coded data that starts at i (stuffed 0xFF00 bytes and restart
// markers belong to the data), or -1 when the data runs to the end.
func entropyEnd(data []byte, i int) int {
	for i < len(data) {
		j := bytes.IndexByte(data[i:], 0xFF) // most bytes are data: skip them fast
		if j < 0 || i+j+1 >= len(data) {
			return -1
		}
		i += j
		if m := data[i+1]; m != 0 && m != 0xFF && (m < markerRST0 || m > markerRST7) {
			return i
		}
		i++
	}
	return -1
}
