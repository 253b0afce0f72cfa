package imaging

import (
	"strings"
	"testing"
)

func TestSpecFromHFConfigErrors(t *testing.T) {
	for cfg, want := range map[string]string{
		`{"image_processor_type": "LayoutLMv3ImageProcessor"}`:                       `"LayoutLMv3ImageProcessor" is not supported`,
		`{"image_processor_type": "CLIPImageProcessor", "do_pad": true}`:             `option "do_pad" is not supported`,
		`{"image_processor_type": "CLIPImageProcessor", "resample": 7}`:              "unknown PIL resample value 7",
		`{"image_processor_type": "CLIPImageProcessor", "do_resize": false}`:         "do_resize false",
		`{"image_processor_type": "ViTImageProcessor", "size": {"longest_edge": 3}}`: `"longest_edge" is not supported`,
		`{"image_processor_type": "CLIPImageProcessor", "crop_size": 300}`:           "larger than the resize",
		`not json`: "preprocessor config",
	} {
		if _, err := SpecFromHFConfig([]byte(cfg)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", cfg, err, want)
		}
	}
	// The fast variant's name reads the same config; defaults fill the rest.
	s, err := SpecFromHFConfig([]byte(`{"image_processor_type": "ConvNextImageProcessorFast", "size": {"shortest_edge": 224}}`))
	if err != nil || s.Resize != 256 || s.CropHeight != 224 || s.Filter != Bilinear {
		t.Errorf("ConvNeXt crop_pct: %+v, %v", s, err)
	}
	if _, err := Recipe("nope"); err == nil || !strings.Contains(err.Error(), "clip, dinov2, efficientnet-b0, imagenet, vit") {
		t.Errorf("unknown recipe: %v", err)
	}
	if Recipe := recipes["imagenet"]; Recipe.Version() != ImageNet.Version() {
		t.Error("the imagenet recipe is not ImageNet")
	}
}
