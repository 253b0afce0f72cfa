package connectortest_test

import (
	"errors"
	"testing"

	"github.com/imgvec/imgvec/connector/connectortest"
	"github.com/imgvec/imgvec/connector/sourcetest"
)

func TestSourceConformance(t *testing.T) {
	sourcetest.Run(t, sourcetest.Harness{MTime: true, New: func(t *testing.T, items []sourcetest.Item) sourcetest.Fixture {
		s := connectortest.NewSource("mem://" + t.Name())
		for _, it := range items {
			s.Put(it.Key, it.Data, it.MTime)
		}
		return sourcetest.Fixture{Source: s, Break: func(*testing.T) {
			s.ListErr, s.ListErrAfter = errors.New("injected listing failure"), len(items)/2
		}}
	}})
}
