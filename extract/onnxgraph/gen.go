package onnxgraph

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
)

// Naming picks whose export a generated model imitates.
type Naming int

const (
	// Torchvision names everything like torch.onnx.export of
	// torchvision.models.vgg19 in eval mode: input "x" with a dynamic batch,
	// initializers "features.0.weight" ... "classifier.6.bias", nodes
	// "/features/features.0/Conv", AveragePool + Flatten, Gemm transB=1, no
	// Dropout, output "logits" [batch, classes]; IR 8, opset 17.
	Torchvision Naming = iota
	// ModelZoo mirrors the ONNX Model Zoo vgg19-7.onnx, which was converted
	// from MXNet Gluon: input "data" [1,3,224,224], weights "vgg0_conv0_weight"
	// ... "vgg0_dense2_bias" that are also listed as graph inputs, nodes
	// "vgg0_conv0_fwd", "vgg0_relu0_fwd", "vgg0_pool0_fwd", a Flatten before
	// each Gemm ("flatten_72", "flatten_77", "flatten_82"), Gemm transB=1,
	// Relu "vgg0_dense0_relu_fwd", Dropout "vgg0_dropout0_fwd", output
	// "vgg0_dense2_fwd" [1, classes] without softmax; IR 3, opset 7.
	ModelZoo
	// Caffe2 mirrors the Model Zoo's vgg19-caffe2-7.onnx (converted from
	// Caffe2): input "data_0" [1,3,224,224], weights "conv1_1_w_0" ...
	// "fc8_b_0" also listed as graph inputs, unnamed nodes with outputs
	// "conv1_1_1" (Conv), "conv1_1_2" (Relu), "pool1_1", a Reshape of
	// "pool5_1" by the int64 initializer "OC2_DUMMY_1" = [1, C*7*7] into
	// "OC2_DUMMY_0", then "fc6_1" (Gemm), "fc6_2" (Relu), "fc6_3" (Dropout),
	// ..., "fc8_1" and Softmax "prob_1"; IR 3, opset 7.
	Caffe2
)

func (n Naming) String() string {
	switch n {
	case Torchvision:
		return "torchvision"
	case ModelZoo:
		return "modelzoo"
	case Caffe2:
		return "caffe2"
	}
	return fmt.Sprintf("Naming(%d)", int(n))
}

// Scale picks the layer widths of a generated model.
type Scale int

const (
	// Tiny keeps VGG19's topology (16 convs in blocks of 2,2,4,4,4, five
	// 2x2 max pools, 3 FC layers, 224x224 input) with conv widths
	// 4,8,16,16,16 and FC widths 64,64,10: about 330 KB.
	Tiny Scale = iota
	// Full has VGG19's real widths: convs 64,128,256,512,512 and FC
	// 4096,4096,1000; about 575 MB.
	Full
)

func (s Scale) String() string {
	if s == Full {
		return "full"
	}
	return "tiny"
}

// VGGOptions configures VGG19.
type VGGOptions struct {
	Naming Naming
	Scale  Scale
	Seed   uint64 // weights are a pure function of Seed, Scale and Naming's tensor order
}

// VGGDims are the widths of a generated model.
type VGGDims struct {
	Conv  [5]int // output channels of each conv block
	FC    [3]int // fc6, fc7, fc8 widths
	Input int    // input height and width
}

// Dims returns the widths VGG19 uses for o.Scale.
func (o VGGOptions) Dims() VGGDims {
	if o.Scale == Full {
		return VGGDims{Conv: [5]int{64, 128, 256, 512, 512}, FC: [3]int{4096, 4096, 1000}, Input: 224}
	}
	return VGGDims{Conv: [5]int{4, 8, 16, 16, 16}, FC: [3]int{64, 64, 10}, Input: 224}
}

var vggBlocks = [5]int{2, 2, 4, 4, 4}

// VGG19 writes a VGG19-architecture model with deterministic random weights
// (He-uniform, small uniform biases) to w. Weights are generated while
// writing, so the full-scale model needs no more than a few MB of memory.
func VGG19(w io.Writer, o VGGOptions) error {
	m, err := vggModel(o)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(w, 1<<20)
	if _, err := m.WriteTo(bw); err != nil {
		return fmt.Errorf("onnxgraph: write VGG19: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("onnxgraph: write VGG19: %w", err)
	}
	return nil
}

// VGG19External is VGG19 with every weight of 1 KiB or more in the
// external data file written to data, which the model names location (as
// onnx.save_model(..., save_as_external_data=True) lays models out).
func VGG19External(w, data io.Writer, location string, o VGGOptions) error {
	m, err := vggModel(o)
	if err != nil {
		return err
	}
	bw, bd := bufio.NewWriterSize(w, 1<<20), bufio.NewWriterSize(data, 1<<20)
	if err := m.WriteExternal(bw, bd, ExternalOptions{Location: location, MinBytes: 1024}); err != nil {
		return fmt.Errorf("onnxgraph: write VGG19: %w", err)
	}
	if err := errors.Join(bw.Flush(), bd.Flush()); err != nil {
		return fmt.Errorf("onnxgraph: write VGG19: %w", err)
	}
	return nil
}

type builder struct {
	g            *Graph
	seed         uint64
	count        uint64
	weightInputs bool
}

func (b *builder) weight(name string, dims []int64, bound float32) {
	n := 1
	for _, d := range dims {
		n *= int(d)
	}
	b.count++
	seed := mix(b.seed ^ mix(b.count))
	t := &Tensor{Name: name, DataType: Float, Dims: dims, genN: 4 * n, gen: uniformGen(seed, n, bound)}
	b.g.Initializers = append(b.g.Initializers, t)
	if b.weightInputs {
		b.g.Inputs = append(b.g.Inputs, floatInput(name, dims...))
	}
}

func (b *builder) node(op, name string, ins []string, out string, attrs ...*Attr) {
	b.g.Nodes = append(b.g.Nodes, &Node{Name: name, OpType: op, Inputs: ins, Outputs: []string{out}, Attrs: attrs})
}

func floatInput(name string, dims ...int64) *ValueInfo {
	v := &ValueInfo{Name: name, ElemType: Float}
	for _, d := range dims {
		v.Shape = append(v.Shape, Dim{Value: d})
	}
	return v
}

func ints(name string, v ...int64) *Attr { return &Attr{Name: name, Type: AttrInts, Ints: v} }
func intA(name string, v int64) *Attr    { return &Attr{Name: name, Type: AttrInt, I: v} }
func floatA(name string, v float32) *Attr {
	return &Attr{Name: name, Type: AttrFloat, F: v}
}

func vggModel(o VGGOptions) (*Model, error) {
	d := o.Dims()
	g := &Graph{}
	b := &builder{g: g, seed: mix(o.Seed + 0x1234567)}
	in := int64(d.Input)
	var irVersion, opset int64
	var x string
	switch o.Naming {
	case Torchvision:
		irVersion, opset, x = 8, 17, "x"
		g.Name = "main_graph"
		g.Inputs = append(g.Inputs, &ValueInfo{Name: x, ElemType: Float, Shape: []Dim{{Param: "batch", Value: -1}, {Value: 3}, {Value: in}, {Value: in}}})
	case ModelZoo, Caffe2:
		irVersion, opset = 3, 7
		x = "data"
		g.Name = "mxnet_converted_model"
		if o.Naming == Caffe2 {
			x, g.Name = "data_0", "vgg19"
		}
		g.Inputs = append(g.Inputs, floatInput(x, 1, 3, in, in))
		b.weightInputs = true
	default:
		return nil, fmt.Errorf("onnxgraph: unknown naming %d", o.Naming)
	}

	cur := x
	cin := int64(3)
	c, fi := 0, 0 // conv counter, torchvision features index
	side := in
	for blk := 0; blk < 5; blk++ {
		cout := int64(d.Conv[blk])
		for j := 0; j < vggBlocks[blk]; j++ {
			var wn, bn, nn, out, rn, rout string
			switch o.Naming {
			case Torchvision:
				wn, bn = fmt.Sprintf("features.%d.weight", fi), fmt.Sprintf("features.%d.bias", fi)
				nn = fmt.Sprintf("/features/features.%d/Conv", fi)
				rn = fmt.Sprintf("/features/features.%d/Relu", fi+1)
				out, rout = nn+"_output_0", rn+"_output_0"
				fi += 2
			case ModelZoo:
				wn, bn = fmt.Sprintf("vgg0_conv%d_weight", c), fmt.Sprintf("vgg0_conv%d_bias", c)
				nn, rn = fmt.Sprintf("vgg0_conv%d_fwd", c), fmt.Sprintf("vgg0_relu%d_fwd", c)
				out, rout = nn, rn
			case Caffe2:
				l := fmt.Sprintf("conv%d_%d", blk+1, j+1)
				wn, bn = l+"_w_0", l+"_b_0"
				out, rout = l+"_1", l+"_2"
			}
			b.weight(wn, []int64{cout, cin, 3, 3}, heBound(cin*9))
			b.weight(bn, []int64{cout}, 0.1)
			b.node("Conv", nn, []string{cur, wn, bn}, out,
				ints("dilations", 1, 1), intA("group", 1), ints("kernel_shape", 3, 3),
				ints("pads", 1, 1, 1, 1), ints("strides", 1, 1))
			b.node("Relu", rn, []string{out}, rout)
			cur, cin = rout, cout
			c++
		}
		var pn, pout string
		switch o.Naming {
		case Torchvision:
			pn = fmt.Sprintf("/features/features.%d/MaxPool", fi)
			pout = pn + "_output_0"
			fi++
		case ModelZoo:
			pn = fmt.Sprintf("vgg0_pool%d_fwd", blk)
			pout = pn
		case Caffe2:
			pout = fmt.Sprintf("pool%d_1", blk+1)
		}
		attrs := []*Attr{ints("kernel_shape", 2, 2), ints("pads", 0, 0, 0, 0), ints("strides", 2, 2)}
		if o.Naming == Torchvision {
			attrs = append([]*Attr{intA("ceil_mode", 0), ints("dilations", 1, 1)}, attrs...)
		}
		b.node("MaxPool", pn, []string{cur}, pout, attrs...)
		cur = pout
		side /= 2
	}

	flat := cin * side * side
	fcIn := flat
	switch o.Naming {
	case Torchvision:
		b.node("AveragePool", "/avgpool/AveragePool", []string{cur}, "/avgpool/AveragePool_output_0",
			intA("ceil_mode", 0), intA("count_include_pad", 1), ints("kernel_shape", 1, 1), ints("pads", 0, 0, 0, 0), ints("strides", 1, 1))
		b.node("Flatten", "/Flatten", []string{"/avgpool/AveragePool_output_0"}, "/Flatten_output_0", intA("axis", 1))
		cur = "/Flatten_output_0"
	case Caffe2:
		g.Initializers = append(g.Initializers, newTensorInt64("OC2_DUMMY_1", []int64{2}, []int64{1, flat}))
		g.Inputs = append(g.Inputs, &ValueInfo{Name: "OC2_DUMMY_1", ElemType: Int64, Shape: []Dim{{Value: 2}}})
		b.node("Reshape", "", []string{cur, "OC2_DUMMY_1"}, "OC2_DUMMY_0")
		cur = "OC2_DUMMY_0"
	}
	for k := 0; k < 3; k++ {
		out := int64(d.FC[k])
		var wn, bn, gn, gout string
		switch o.Naming {
		case Torchvision:
			idx := 3 * k
			wn, bn = fmt.Sprintf("classifier.%d.weight", idx), fmt.Sprintf("classifier.%d.bias", idx)
			gn = fmt.Sprintf("/classifier/classifier.%d/Gemm", idx)
			gout = gn + "_output_0"
			if k == 2 {
				gout = "logits"
			}
		case ModelZoo:
			fl := fmt.Sprintf("flatten_%d", 72+5*k)
			b.node("Flatten", fl, []string{cur}, fl)
			cur = fl
			wn, bn = fmt.Sprintf("vgg0_dense%d_weight", k), fmt.Sprintf("vgg0_dense%d_bias", k)
			gn = fmt.Sprintf("vgg0_dense%d_fwd", k)
			gout = gn
		case Caffe2:
			l := fmt.Sprintf("fc%d", 6+k)
			wn, bn, gout = l+"_w_0", l+"_b_0", l+"_1"
		}
		b.weight(wn, []int64{out, fcIn}, heBound(fcIn))
		b.weight(bn, []int64{out}, 0.1)
		b.node("Gemm", gn, []string{cur, wn, bn}, gout, floatA("alpha", 1), floatA("beta", 1), intA("transB", 1))
		cur = gout
		fcIn = out
		if k == 2 {
			break
		}
		var rn, rout, dn, dout string
		switch o.Naming {
		case Torchvision:
			rn = fmt.Sprintf("/classifier/classifier.%d/Relu", 3*k+1)
			rout = rn + "_output_0"
		case ModelZoo:
			rn, dn = fmt.Sprintf("vgg0_dense%d_relu_fwd", k), fmt.Sprintf("vgg0_dropout%d_fwd", k)
			rout, dout = rn, dn
		case Caffe2:
			rout, dout = fmt.Sprintf("fc%d_2", 6+k), fmt.Sprintf("fc%d_3", 6+k)
		}
		b.node("Relu", rn, []string{cur}, rout)
		cur = rout
		if o.Naming != Torchvision { // the torch exporter drops Dropout in eval mode
			b.node("Dropout", dn, []string{cur}, dout, floatA("ratio", 0.5))
			cur = dout
		}
	}
	classes := int64(d.FC[2])
	switch o.Naming {
	case Torchvision:
		g.Outputs = []*ValueInfo{{Name: cur, ElemType: Float, Shape: []Dim{{Param: "batch", Value: -1}, {Value: classes}}}}
	case ModelZoo:
		g.Outputs = []*ValueInfo{floatInput(cur, 1, classes)}
	case Caffe2:
		b.node("Softmax", "", []string{cur}, "prob_1")
		g.Outputs = []*ValueInfo{floatInput("prob_1", 1, classes)}
	}

	return newModel(irVersion, opset, "vgg19-"+o.Naming.String()+"-"+o.Scale.String(), g), nil
}

// newModel wraps a built graph in a ModelProto with one default-domain opset.
func newModel(irVersion, opset int64, version string, g *Graph) *Model {
	var top []byte
	top = putVarint(top, 1, uint64(irVersion))
	top = putString(top, 2, "imgvec-onnxgraph")
	top = putString(top, 3, version)
	top = putBytes(top, 8, putVarint(putString(nil, 1, ""), 2, uint64(opset)))
	fs, err := parseFields(top, "generated model", 0)
	if err != nil {
		panic(err) // our own encoding
	}
	return &Model{IRVersion: irVersion, ProducerName: "imgvec-onnxgraph", Opsets: []Opset{{Version: opset}}, Graph: g, fields: fs}
}

// heBound is the He-uniform bound sqrt(6/fanIn): weights keep the second
// moment of ReLU activations roughly constant from layer to layer.
func heBound(fanIn int64) float32 { return float32(math.Sqrt(6 / float64(fanIn))) }

// mix is splitmix64's output function.
func mix(z uint64) uint64 {
	z += 0x9E3779B97F4A7C15
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
	z = (z ^ (z >> 27)) * 0x94D049BB133111EB
	return z ^ (z >> 31)
}

// uniformGen writes n little-endian float32 values uniform in [-bound, bound).
func uniformGen(seed uint64, n int, bound float32) func(w io.Writer) error {
	return func(w io.Writer) error {
		buf := make([]byte, 1<<16)
		s := seed
		for left := n; left > 0; {
			k := min(left, len(buf)/4)
			for i := 0; i < k; i++ {
				s += 0x9E3779B97F4A7C15
				z := s
				z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
				z = (z ^ (z >> 27)) * 0x94D049BB133111EB
				z ^= z >> 31
				u := float32(z>>40) * (1.0 / (1 << 24))
				binary.LittleEndian.PutUint32(buf[4*i:], math.Float32bits((2*u-1)*bound))
			}
			if _, err := w.Write(buf[:4*k]); err != nil {
				return err
			}
			left -= k
		}
		return nil
	}
}
