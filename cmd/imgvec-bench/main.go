package main

import (
	"fmt"
	"os"
	"time"
)

func main() {
	t0 := time.Now()
	_, info, err := resolveModel(".", "full", func(f string, a ...any) { fmt.Fprintf(os.Stderr, f+"\n", a...) })
	fmt.Println(info, err, time.Since(t0))
}
