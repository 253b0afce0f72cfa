package keyfilter

import "testing"

func TestFilter(t *testing.T) {
	f, err := New([]string{"2024/**"}, []string{"**/thumbs/**"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]bool{
		"2024/a.JPG": true, "2024/x/b.webp": true, "2023/a.jpg": false, "2024/notes.txt": false,
		"2024/thumbs/a.jpg": false, "2024/noext": false,
	} {
		if got := f.Wanted(key); got != want {
			t.Errorf("Wanted(%q) = %v, want %v", key, got, want)
		}
	}
	if any, _ := New(nil, nil, []string{".png", "*"}); !any.Wanted("a.txt") {
		t.Error(`extension "*" does not list every extension`)
	}
	if _, err := New([]string{"["}, nil, nil); err == nil {
		t.Error(`pattern "[" accepted`)
	}
	if _, err := New(nil, nil, []string{""}); err == nil {
		t.Error("empty extension accepted")
	}
}
