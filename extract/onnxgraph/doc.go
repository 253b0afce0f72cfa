// Package onnxgraph reads, inspects, cuts and generates ONNX models in pure
// Go, so that imgvec can read a feature layer (VGG19 fc7 by default) from a
// model whose graph outputs are class scores. ONNX Runtime returns graph
// outputs only; Cut makes the feature layer the output.
//
// # Encoding
//
// Models are decoded with google.golang.org/protobuf/encoding/protowire
// against the field numbers of onnx.proto (ModelProto, GraphProto,
// NodeProto, AttributeProto, TensorProto, ValueInfoProto, TypeProto). Only
// what inspection and cutting need is decoded: node wiring and attributes,
// initializer names, types and dims, value-info types and shapes. Everything
// else — unknown fields, doc strings, metadata, training info, functions —
// is kept as the raw bytes it was read from and written back unchanged.
// Initializer data is never decoded or copied: a Model references the byte
// slice given to Parse (so the caller must not modify it while the Model is
// in use), and WriteTo/CutTo stream those slices to the writer. A parsed
// model that is not changed is written back byte for byte.
//
// Parse fails with an error wrapping ErrNotONNX (not a protobuf ModelProto,
// no graph, wrong wire types, or a recognised wrong file such as a Git LFS
// pointer, an HTML error page or an archive) or ErrTruncated (a field runs
// past the end of the input). It never panics on arbitrary input.
//
// # Candidate layers
//
// Inspect finds feature layers by graph structure, not by tensor names:
//
//   - fully connected layers are Gemm nodes (transA 0, transB 0 or 1) and
//     MatMul nodes (with an optional bias Add) whose weight is a 2-D constant
//     (an initializer or a Constant node), in topological order; the first
//     is "fc6", the second "fc7", the third "fc8" and so on. A layer's
//     tensor is the output of the Relu that follows the FC, through optional
//     Dropout/Identity nodes, where there is one, else the FC output;
//   - "pool5" is the last MaxPool before the first FC;
//   - "avgpool" is the last GlobalAveragePool, through a following
//     Flatten/Reshape/Squeeze (ResNet-style models).
//
// Shapes are inferred for the ops such models use (Conv, pools, Flatten,
// Reshape with a constant shape, Gemm, MatMul, element-wise ops); a Layer's
// Shape has -1 for the batch dimension and Dim is the per-image width.
//
// # Cut
//
// Cut(layer) takes a candidate layer name (case-insensitive) or a raw tensor
// name and returns a model whose single output is that tensor as float
// [N, dim]: nodes the tensor does not depend on are dropped, then unused
// initializers, graph inputs and value_info entries. Old exporters (IR < 4,
// e.g. the Model Zoo's vgg19-7.onnx) list every weight as a graph input too;
// the image input is the graph input that is not an initializer. The image
// input's batch dimension becomes the symbolic "N"; a Reshape whose constant
// shape pins the batch to 1 gets a new shape with 0 (copy the batch), or -1
// where allowzero is set; a layer of rank > 2 (pool5) is flattened by an
// added Flatten node. IR version, opset imports and all other top-level
// fields are kept. Control-flow subgraphs (If/Loop) are copied untouched;
// names they capture from the outer graph are not traced by Cut.
//
// Any tensor works as a layer too: Resolve (and Cut) take an alias or the
// exact name of a tensor a node computes; an unknown name fails with
// ErrNoSuchLayer listing the aliases, the graph outputs and the closest
// tensor names. Tensors lists every computed tensor with its shape. A token
// tensor [N, T, D] is cut only with CutOptions.Pool: "cls" adds a Gather of
// token 0, "mean" a ReduceMean over the tokens (attribute or input by
// opset); without it the error wraps ErrTokenOutput.
//
// # External data
//
// Initializers whose data_location is EXTERNAL keep their reference
// (location, offset, length) untouched by Parse and Cut; ExternalFiles
// lists the data files, refusing locations outside the model's directory.
// WriteInline streams the external data into the written model; over
// MaxInline (protobuf's 2 GiB), WriteExternal streams it into a new data
// file instead. Save picks one and writes atomically. The weights are
// streamed from their files, never held in memory.
//
// # Quantization
//
// QuantizeStatic rewrites a model into QDQ form: DequantizeLinear of
// symmetric per-output-channel int8 weights and int32 biases, and a
// QuantizeLinear/DequantizeLinear pair (asymmetric uint8) on the data input
// and output of every Conv, Gemm and MatMul with a float weight initializer
// — after the Relu that is an output's only consumer, and with shared
// parameters across pass-through ops (MaxPool, Flatten, Reshape, Dropout),
// so that ONNX Runtime fuses them into integer kernels. The ranges come
// from the caller (extract.Calibrate measures QuantTensors through
// WithOutputs); where a Range of a node's data input (QuantInputs) carries
// its channel means, the node's bias is corrected for the mean shift its
// weights' rounding causes. It needs opset 13. QuantizeDynamic rewrites only the
// Linear layers, as ONNX Runtime's quantize_dynamic does
// (DynamicQuantizeLinear, MatMulInteger, scales in float). Both keep tensor
// names; Inspect sees a DequantizeLinear of an initializer as a constant,
// so a static model's fc layers keep their aliases. Weights must be inline.
//
// Float16 converts a model to float16 compute with float32 input and
// output (Casts at both ends); Inspect follows a fc layer's Relu through
// the final Cast, so aliases keep working.
//
// # Generators
//
// VGG19 writes a VGG19-architecture model with deterministic random weights
// (seeded splitmix64, He-uniform weights, small uniform biases, so ReLU
// activations stay finite and non-trivial) in one of three namings —
// Torchvision (torch.onnx export of torchvision vgg19), ModelZoo (the Model
// Zoo's vgg19-7.onnx, an MXNet conversion) and Caffe2 (the Model Zoo's
// vgg19-caffe2-*.onnx) — at Tiny or Full scale; VGG19External writes it
// with its weights in a data file. Embedding writes tiny 224×224 embedding
// exports: Pooled (one output image_embeds) and Tokens (last_hidden_state
// and pooler_output, ViT-style). Weights are generated while writing, so
// the ~575 MB full model is streamed with a few MB of memory.
//
// Nothing in this package needs ONNX Runtime or Python; its tests use ONNX
// Runtime (IMGVEC_ORT_LIB or .cache/onnxruntime/1.30.0/libonnxruntime.so.1)
// to check that cut models run.
package onnxgraph
