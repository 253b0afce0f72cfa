// Package mapview writes what `imgvec map` shows: one self-contained HTML
// page (WriteHTML) and a static PNG (WritePNG) of laid-out points.
//
// The page works offline from file://: its script and style are inline,
// its data (positions, keys, colours, neighbour lists, thumbnail sprite
// sheets as data: URIs) is one JSON document in the page, and a
// Content-Security-Policy allows nothing else to load (images only from
// data: URIs). Everything from the sink or the source (keys, source names,
// metadata values) is data: the JSON is escaped so that no text closes
// its script element, and the script puts it into the page with
// textContent only. A thumbnail that could not be made is drawn as a grey
// tile.
//
// The page's test hook is window.imgvecMap (stats, hover, selectAll);
// opened with #selftest it exercises them and writes the results as JSON
// into <html data-selftest>, which a headless browser's --dump-dom shows
// (mapview/chromiumtest).
//
// Concurrency: the functions here hold no state; Sprites is not safe for
// concurrent Add.
package mapview
