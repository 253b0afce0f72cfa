package mapview

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"io"
	"strconv"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

// WritePNG draws p's points, coloured by group, with a legend, as a
// width×height PNG.
func WritePNG(w io.Writer, p Page, width, height int) error {
	if width < 16 || height < 16 {
		return fmt.Errorf("map picture: size %dx%d is too small", width, height)
	}
	img := image.NewRGBA(image.Rect(0, 0, width, height))
	draw.Draw(img, img.Bounds(), image.NewUniform(color.White), image.Point{}, draw.Src)
	gs, of := groups(p.Items)
	colors := make([]color.RGBA, len(gs))
	for i, g := range gs {
		colors[i] = hexColor(g.Color)
	}
	xs, ys := unitCoords(p.Items)
	side := float64(min(width, height)) * 0.92
	ox, oy := (float64(width)-side)/2, (float64(height)-side)/2
	r := 2
	if len(p.Items) > 5000 {
		r = 1
	}
	for i := range p.Items {
		cx, cy := int(ox+xs[i]*side), int(oy+ys[i]*side)
		draw.Draw(img, image.Rect(cx-r, cy-r, cx+r+1, cy+r+1), image.NewUniform(colors[of[i]]), image.Point{}, draw.Over)
	}
	face := basicfont.Face7x13
	d := font.Drawer{Dst: img, Face: face}
	y := 16
	for i, g := range gs {
		if y > height-8 {
			break
		}
		draw.Draw(img, image.Rect(8, y-9, 18, y+1), image.NewUniform(colors[i]), image.Point{}, draw.Src)
		d.Src = image.NewUniform(color.Black)
		d.Dot = fixed.P(24, y)
		d.DrawString(legendText(g.Name+" ("+strconv.Itoa(g.Count)+")", 48))
		y += 15
	}
	if err := png.Encode(w, img); err != nil {
		return fmt.Errorf("map picture: %w", err)
	}
	return nil
}

// legendText is s shortened to n runes, printable in the basic font.
func legendText(s string, n int) string {
	r := []rune(s)
	for i, c := range r {
		if c < 0x20 || c > 0x7e {
			r[i] = '?'
		}
	}
	if len(r) > n {
		r = append(r[:n-1], '~')
	}
	return string(r)
}

func hexColor(s string) color.RGBA {
	v, _ := strconv.ParseUint(s[1:], 16, 32)
	return color.RGBA{uint8(v >> 16), uint8(v >> 8), uint8(v), 255}
}
