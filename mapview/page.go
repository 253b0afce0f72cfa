package mapview

import (
	"bytes"
	_ "embed"
	"encoding/base64"
	"fmt"
	"html/template"
	"image"
	"image/draw"
	"image/jpeg"
	"io"
	"math"
	"sort"
)

// Item is one point of the map.
type Item struct {
	Source string  // source identity, as stored
	Key    string  // as stored
	X, Y   float32 // layout position (any scale)
	Group  string  // what colours the point (its source, format or a metadata value)
	Thumb  int     // tile index in the page's Sprites; −1: none (a grey tile)
	// Neighbours are indices into the page's Items, nearest first, with
	// their cosine distances.
	Neighbours []Neighbour
}

// Neighbour is one entry of an item's neighbour list.
type Neighbour struct {
	Index    int
	Distance float32
}

// Page is what WriteHTML and WritePNG draw.
type Page struct {
	Title   string
	ModelID string
	ColorBy string
	Note    string // shown under the title (e.g. how many points were placed)
	Items   []Item
	// LinkBase maps a source identity to the URL its keys are relative to
	// (file:///root/ for a local folder); sources absent get no link.
	LinkBase map[string]string
	Thumbs   *Sprites // nil: no thumbnails
}

// palette is Tableau's 20 colours, strongest first; groups beyond it share
// the last grey.
var palette = []string{
	"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#bcbd22", "#17becf",
	"#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94", "#f7b6d2", "#dbdb8d", "#9edae5", "#7f7f7f",
}

// otherGroup names the points whose group did not get a colour of its own.
const otherGroup = "(other)"

type group struct {
	Name  string `json:"name"`
	Color string `json:"color"`
	Count int    `json:"count"`
}

// groups orders the items' groups by size (then name), gives the largest
// a colour each and the rest one shared colour; it returns them and each
// item's group index.
func groups(items []Item) ([]group, []int) {
	count := map[string]int{}
	for _, it := range items {
		count[it.Group]++
	}
	names := make([]string, 0, len(count))
	for n := range count {
		names = append(names, n)
	}
	sort.Slice(names, func(a, b int) bool {
		if count[names[a]] != count[names[b]] {
			return count[names[a]] > count[names[b]]
		}
		return names[a] < names[b]
	})
	index := map[string]int{}
	var out []group
	for i, n := range names {
		if i < len(palette)-1 || len(names) == len(palette) {
			index[n] = len(out)
			out = append(out, group{Name: n, Color: palette[i], Count: count[n]})
			continue
		}
		if i == len(palette)-1 {
			out = append(out, group{Name: otherGroup, Color: palette[len(palette)-1]})
		}
		index[n] = len(out) - 1
		out[len(out)-1].Count += count[n]
	}
	of := make([]int, len(items))
	for i, it := range items {
		of[i] = index[it.Group]
	}
	return out, of
}

// unitCoords maps the items' positions into [0, 1]² keeping the aspect
// ratio, centred.
func unitCoords(items []Item) (xs, ys []float64) {
	if len(items) == 0 {
		return nil, nil
	}
	x0, y0, x1, y1 := math.Inf(1), math.Inf(1), math.Inf(-1), math.Inf(-1)
	for _, it := range items {
		x0, x1 = min(x0, float64(it.X)), max(x1, float64(it.X))
		y0, y1 = min(y0, float64(it.Y)), max(y1, float64(it.Y))
	}
	span := max(x1-x0, y1-y0)
	if span == 0 {
		span = 1
	}
	xs, ys = make([]float64, len(items)), make([]float64, len(items))
	for i, it := range items {
		xs[i] = (float64(it.X)-x0)/span + (1-(x1-x0)/span)/2
		ys[i] = (float64(it.Y)-y0)/span + (1-(y1-y0)/span)/2
	}
	return xs, ys
}

// pageData is the page's JSON: columns, so that 100,000 points stay a
// few megabytes.
type pageData struct {
	Title    string    `json:"title"`
	Model    string    `json:"model"`
	ColorBy  string    `json:"colorBy"`
	Note     string    `json:"note"`
	N        int       `json:"n"`
	X        []uint16  `json:"x"`
	Y        []uint16  `json:"y"`
	Key      []string  `json:"key"`
	Src      []int     `json:"src"`
	Sources  []string  `json:"sources"`
	LinkBase []string  `json:"linkBase"`
	Group    []int     `json:"group"`
	Groups   []group   `json:"groups"`
	Thumb    []int     `json:"thumb"`
	Tile     int       `json:"tile"`
	PerRow   int       `json:"perRow"`
	PerSheet int       `json:"perSheet"`
	Sheets   []string  `json:"sheets"`
	K        int       `json:"k"`
	Nbr      []int     `json:"nbr"`
	NbrDist  []float32 `json:"nbrDist"`
}

//go:embed page.html
var pageHTML string

var pageTemplate = template.Must(template.New("map").Parse(pageHTML))

// WriteHTML writes p as one self-contained page.
func WriteHTML(w io.Writer, p Page) error {
	d := pageData{Title: p.Title, Model: p.ModelID, ColorBy: p.ColorBy, Note: p.Note, N: len(p.Items),
		X: make([]uint16, len(p.Items)), Y: make([]uint16, len(p.Items)), Key: make([]string, len(p.Items)),
		Src: make([]int, len(p.Items)), Thumb: make([]int, len(p.Items)), Sheets: []string{}}
	xs, ys := unitCoords(p.Items)
	srcIndex := map[string]int{}
	for i, it := range p.Items {
		d.X[i], d.Y[i] = uint16(math.Round(xs[i]*65535)), uint16(math.Round(ys[i]*65535))
		d.Key[i], d.Thumb[i] = it.Key, it.Thumb
		s, ok := srcIndex[it.Source]
		if !ok {
			s = len(d.Sources)
			srcIndex[it.Source] = s
			d.Sources = append(d.Sources, it.Source)
			d.LinkBase = append(d.LinkBase, p.LinkBase[it.Source])
		}
		d.Src[i] = s
		d.K = max(d.K, len(it.Neighbours))
	}
	d.Groups, d.Group = groups(p.Items)
	d.Nbr, d.NbrDist = make([]int, len(p.Items)*d.K), make([]float32, len(p.Items)*d.K)
	for i, it := range p.Items {
		for c := range d.K {
			d.Nbr[i*d.K+c] = -1
			if c < len(it.Neighbours) {
				nb := it.Neighbours[c]
				d.Nbr[i*d.K+c] = nb.Index
				d.NbrDist[i*d.K+c] = float32(math.Round(float64(nb.Distance)*1e4) / 1e4)
			}
		}
	}
	if p.Thumbs != nil {
		sheets, err := p.Thumbs.sheets()
		if err != nil {
			return err
		}
		d.Tile, d.PerRow, d.PerSheet = p.Thumbs.tile, spriteRow, spriteRow*spriteRow
		for _, s := range sheets {
			d.Sheets = append(d.Sheets, "data:image/jpeg;base64,"+base64.StdEncoding.EncodeToString(s))
		}
	} else {
		for i := range d.Thumb {
			d.Thumb[i] = -1
		}
	}
	if err := pageTemplate.Execute(w, struct {
		Title string
		Data  pageData
	}{p.Title, d}); err != nil {
		return fmt.Errorf("map page: %w", err)
	}
	return nil
}

// spriteRow is the tiles per row and rows per sheet: 1,024 tiles of 64
// px make a 2048×2048 JPEG.
const spriteRow = 32

// Sprites packs thumbnails into JPEG sprite sheets.
type Sprites struct {
	tile    int
	n       int
	current *image.RGBA
	done    [][]byte
}

// NewSprites makes an empty set of sheets of tile×tile thumbnails.
func NewSprites(tile int) *Sprites { return &Sprites{tile: tile} }

// Add places img (tile×tile; it is not scaled) in the next tile and
// returns its index. Add must not be called once a page holding s was
// written (that encodes the last sheet).
func (s *Sprites) Add(img image.Image) (int, error) {
	slot := s.n % (spriteRow * spriteRow)
	if slot == 0 {
		if err := s.flush(); err != nil {
			return 0, err
		}
		s.current = image.NewRGBA(image.Rect(0, 0, spriteRow*s.tile, spriteRow*s.tile))
	}
	at := image.Pt(slot%spriteRow*s.tile, slot/spriteRow*s.tile)
	draw.Draw(s.current, image.Rectangle{Min: at, Max: at.Add(image.Pt(s.tile, s.tile))}, img, img.Bounds().Min, draw.Src)
	s.n++
	return s.n - 1, nil
}

// Len is how many thumbnails were added.
func (s *Sprites) Len() int { return s.n }

func (s *Sprites) flush() error {
	if s.current == nil {
		return nil
	}
	used := (s.n-1)%(spriteRow*spriteRow)/spriteRow + 1 // rows holding tiles
	var b bytes.Buffer
	if err := jpeg.Encode(&b, s.current.SubImage(image.Rect(0, 0, spriteRow*s.tile, used*s.tile)), &jpeg.Options{Quality: 80}); err != nil {
		return fmt.Errorf("map thumbnails: %w", err)
	}
	s.done, s.current = append(s.done, b.Bytes()), nil
	return nil
}

func (s *Sprites) sheets() ([][]byte, error) {
	if err := s.flush(); err != nil {
		return nil, err
	}
	return s.done, nil
}
