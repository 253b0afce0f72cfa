package connectortest_test

import (
	"testing"

	"github.com/imgvec/imgvec/connector"
	"github.com/imgvec/imgvec/connector/connectortest"
	"github.com/imgvec/imgvec/schema"
	"github.com/imgvec/imgvec/sinks/sinktest"
)

// The fake is held to the contract the real sinks pass.
func TestSinkConformance(t *testing.T) {
	forgeDim := func(t *testing.T, s connector.Sink, model schema.ModelIdentity, dim int) {
		s.(*connectortest.Sink).Put(schema.Record{Source: "file:///forged", Key: "forged.jpg",
			ModelID: model.ID(), Layer: model.Layer, Dim: dim, Vector: make([]float32, dim)})
	}
	sinktest.Run(t, func(*testing.T) connector.Sink { return connectortest.NewSink() },
		sinktest.WithForgeDim(forgeDim), sinktest.WithParallel())
}
