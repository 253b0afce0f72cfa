package imaging

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strings"
)

// Mean/std constants of transformers (image_utils).
var (
	clipMean     = [3]float32{0.48145466, 0.4578275, 0.40821073}
	clipStd      = [3]float32{0.26862954, 0.26130258, 0.27577711}
	imagenetMean = [3]float32{0.485, 0.456, 0.406}
	imagenetStd  = [3]float32{0.229, 0.224, 0.225}
	halfMeanStd  = [3]float32{0.5, 0.5, 0.5}
)

// hfDefaults are the constructor defaults of the image processors that
// SpecFromHFConfig reads (transformers 4.57, the PIL/numpy "slow"
// processors), as their to_dict() writes them.
var hfDefaults = map[string]string{
	"CLIPImageProcessor":     `{"do_resize": true, "size": {"shortest_edge": 224}, "resample": 3, "do_center_crop": true, "crop_size": {"height": 224, "width": 224}, "do_rescale": true, "rescale_factor": 0.00392156862745098, "do_normalize": true, "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_std": [0.26862954, 0.26130258, 0.27577711], "do_convert_rgb": true}`,
	"ViTImageProcessor":      `{"do_resize": true, "size": {"height": 224, "width": 224}, "resample": 2, "do_rescale": true, "rescale_factor": 0.00392156862745098, "do_normalize": true, "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]}`,
	"BitImageProcessor":      `{"do_resize": true, "size": {"shortest_edge": 224}, "resample": 3, "do_center_crop": true, "crop_size": {"height": 224, "width": 224}, "do_rescale": true, "rescale_factor": 0.00392156862745098, "do_normalize": true, "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_std": [0.26862954, 0.26130258, 0.27577711], "do_convert_rgb": true}`,
	"ConvNextImageProcessor": `{"do_resize": true, "size": {"shortest_edge": 384}, "crop_pct": 0.875, "resample": 2, "do_rescale": true, "rescale_factor": 0.00392156862745098, "do_normalize": true, "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]}`,
	"DeiTImageProcessor":     `{"do_resize": true, "size": {"height": 256, "width": 256}, "resample": 3, "do_center_crop": true, "crop_size": {"height": 224, "width": 224}, "do_rescale": true, "rescale_factor": 0.00392156862745098, "do_normalize": true, "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]}`,
	"SiglipImageProcessor":   `{"do_resize": true, "size": {"height": 224, "width": 224}, "resample": 3, "do_rescale": true, "rescale_factor": 0.00392156862745098, "do_normalize": true, "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]}`,
}

// hfIgnored are keys that do not change the pixels: names and bookkeeping.
// do_convert_rgb is always in effect: images are decoded to RGB.
var hfIgnored = map[string]bool{
	"image_processor_type": true, "feature_extractor_type": true, "processor_class": true,
	"_processor_class": true, "do_convert_rgb": true, "auto_map": true,
}

// SpecFromHFConfig reads a Hugging Face preprocessor_config.json of a
// CLIP, ViT, BiT (DINOv2), ConvNeXt, DeiT or SigLIP image processor and
// returns the Spec that gives the tensors transformers' PIL-backend
// processor gives: resize (size.shortest_edge with int(size*long/short),
// or size.height/width), resample, center crop with floor offsets, or
// ConvNeXt's crop_pct (shortest_edge/crop_pct, then crop, under 384;
// a square warp from 384), rescale_factor and image_mean/image_std. A key
// that is not understood, a processor type not listed, or a setting these
// processors would honour but imaging cannot (no resize, a crop larger than
// the image, max_size...) is an error naming it.
func SpecFromHFConfig(data []byte) (Spec, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return Spec{}, fmt.Errorf("preprocessor config: %w", err)
	}
	var typ string
	if t, ok := raw["image_processor_type"]; ok {
		if err := json.Unmarshal(t, &typ); err != nil {
			return Spec{}, fmt.Errorf("preprocessor config: image_processor_type: %w", err)
		}
	} else if t, ok := raw["feature_extractor_type"]; ok {
		if err := json.Unmarshal(t, &typ); err != nil {
			return Spec{}, fmt.Errorf("preprocessor config: feature_extractor_type: %w", err)
		}
		typ = strings.Replace(typ, "FeatureExtractor", "ImageProcessor", 1)
	}
	typ = strings.TrimSuffix(typ, "Fast") // the fast variants take the same config
	def, ok := hfDefaults[typ]
	if !ok {
		var known []string
		for k := range hfDefaults {
			known = append(known, k)
		}
		sort.Strings(known)
		return Spec{}, fmt.Errorf("preprocessor config: image processor type %q is not supported (supported: %s)", typ, strings.Join(known, ", "))
	}
	var cfg map[string]json.RawMessage
	if err := json.Unmarshal([]byte(def), &cfg); err != nil {
		panic(err) // our own table
	}
	for k, v := range raw {
		if hfIgnored[k] {
			continue
		}
		if _, known := cfg[k]; !known {
			return Spec{}, fmt.Errorf("preprocessor config: %s: option %q is not supported", typ, k)
		}
		if !bytes.Equal(bytes.TrimSpace(v), []byte("null")) {
			cfg[k] = v
		}
	}
	c := hfConfig{typ: typ, raw: cfg}
	s, err := c.spec()
	if err != nil {
		return Spec{}, fmt.Errorf("preprocessor config: %s: %w", typ, err)
	}
	if err := s.validate(); err != nil {
		return Spec{}, fmt.Errorf("preprocessor config: %s: %w", typ, err)
	}
	return s, nil
}

type hfConfig struct {
	typ string
	raw map[string]json.RawMessage
	err error
}

func (c *hfConfig) get(key string, dst any) bool {
	v, ok := c.raw[key]
	if !ok || c.err != nil {
		return false
	}
	if err := json.Unmarshal(v, dst); err != nil {
		c.err = fmt.Errorf("%s: %w", key, err)
		return false
	}
	return true
}

// size reads a size dict (or a bare int, as old configs write it).
func (c *hfConfig) size(key string) (shortest, height, width int) {
	v := c.raw[key]
	var n int
	if json.Unmarshal(v, &n) == nil {
		if key == "size" && (c.typ == "CLIPImageProcessor" || c.typ == "BitImageProcessor" || c.typ == "ConvNextImageProcessor") {
			return n, 0, 0 // get_size_dict(default_to_square=False)
		}
		return 0, n, n
	}
	var m map[string]int
	if err := json.Unmarshal(v, &m); err != nil {
		c.err = fmt.Errorf("%s: %w", key, err)
		return
	}
	for k := range m {
		if k != "shortest_edge" && k != "height" && k != "width" {
			c.err = fmt.Errorf("%s: %q is not supported (want shortest_edge or height and width)", key, k)
			return
		}
	}
	shortest, height, width = m["shortest_edge"], m["height"], m["width"]
	if (shortest > 0) == (height > 0 || width > 0) || (shortest == 0 && (height <= 0 || width <= 0)) {
		c.err = fmt.Errorf("%s: %s: want shortest_edge, or height and width", key, v)
	}
	return
}

func (c *hfConfig) spec() (Spec, error) {
	var s Spec
	var doResize, doCrop, doRescale, doNormalize bool
	c.get("do_resize", &doResize)
	c.get("do_center_crop", &doCrop)
	c.get("do_rescale", &doRescale)
	c.get("do_normalize", &doNormalize)
	if !doResize {
		return s, fmt.Errorf("do_resize false is not supported (the model needs a fixed input size)")
	}
	var resample int
	c.get("resample", &resample)
	f, err := PILFilter(resample)
	if err != nil {
		return s, fmt.Errorf("resample: %w", err)
	}
	s.Filter = f
	short, h, w := c.size("size")
	if c.err != nil {
		return s, c.err
	}
	if _, ok := c.raw["crop_pct"]; ok {
		var pct float64
		c.get("crop_pct", &pct)
		if short == 0 {
			return s, fmt.Errorf("crop_pct needs size.shortest_edge")
		}
		if short < 384 {
			if !(pct > 0 && pct <= 1) {
				return s, fmt.Errorf("crop_pct %v: want 0 < crop_pct <= 1", pct)
			}
			// int(shortest_edge / crop_pct), then center_crop(shortest_edge).
			s.Resize = int(float64(short) / pct)
			s.CropHeight, s.CropWidth = short, short
		} else {
			s.ResizeHeight, s.ResizeWidth = short, short
		}
		short = 0
	} else if short > 0 {
		s.Resize = short
	} else {
		s.ResizeHeight, s.ResizeWidth = h, w
	}
	if doCrop {
		if s.CropHeight > 0 {
			return s, fmt.Errorf("do_center_crop with crop_pct is not supported")
		}
		cs, ch, cw := c.size("crop_size")
		if cs > 0 {
			ch, cw = cs, cs
		}
		s.CropHeight, s.CropWidth = ch, cw
	}
	if s.CropHeight > 0 {
		s.FloorCrop = true
	}
	s.Rescale = 1
	if doRescale {
		c.get("rescale_factor", &s.Rescale)
		if s.Rescale == 0 {
			return s, fmt.Errorf("rescale_factor 0")
		}
	}
	s.Std = [3]float32{1, 1, 1}
	if doNormalize {
		var mean, std []float64
		c.get("image_mean", &mean)
		c.get("image_std", &std)
		if c.err == nil && (len(mean) != 3 || len(std) != 3) {
			return s, fmt.Errorf("image_mean %v, image_std %v: want 3 values each", mean, std)
		}
		for i := 0; i < 3 && c.err == nil; i++ {
			if math.IsNaN(mean[i]) || math.IsNaN(std[i]) {
				return s, fmt.Errorf("image_mean %v, image_std %v", mean, std)
			}
			s.Mean[i], s.Std[i] = float32(mean[i]), float32(std[i])
		}
	}
	return s, c.err
}

// Recipes are the named preprocessings --preprocess accepts.
var recipes = map[string]Spec{
	"imagenet": ImageNet,
	// CLIP (openai/clip-vit-*-patch*): CLIPImageProcessor's defaults.
	"clip": {Resize: 224, Filter: Bicubic, CropHeight: 224, CropWidth: 224, FloorCrop: true, Rescale: 1.0 / 255, Mean: clipMean, Std: clipStd},
	// ViT (google/vit-base-patch16-224): bilinear warp to 224×224, mean/std 0.5.
	"vit": {ResizeHeight: 224, ResizeWidth: 224, Filter: Bilinear, Rescale: 1.0 / 255, Mean: halfMeanStd, Std: halfMeanStd},
	// DINOv2 (facebook/dinov2-*): BitImageProcessor, shortest edge 256, crop 224, ImageNet mean/std.
	"dinov2": {Resize: 256, Filter: Bicubic, CropHeight: 224, CropWidth: 224, FloorCrop: true, Rescale: 1.0 / 255, Mean: imagenetMean, Std: imagenetStd},
	// torchvision efficientnet_b0 (IMAGENET1K_V1): Resize(256, bicubic), CenterCrop(224).
	"efficientnet-b0": {Resize: 256, Crop: 224, Filter: Bicubic, Mean: imagenetMean, Std: imagenetStd},
}

// Recipe returns the named preprocessing: imagenet, clip, vit, dinov2 or
// efficientnet-b0.
func Recipe(name string) (Spec, error) {
	if s, ok := recipes[name]; ok {
		return s, nil
	}
	return Spec{}, fmt.Errorf("unknown preprocessing recipe %q (want %s, or the path of a preprocessor_config.json)", name, strings.Join(RecipeNames(), ", "))
}

// RecipeNames lists the recipes, sorted.
func RecipeNames() []string {
	var n []string
	for k := range recipes {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}
