"""The image processor of the zoo's image classifiers: any picture → the tensor the model saw in training.

Training images are (C, H, W) floats in [0, 1] (grey for Fashion-MNIST and digits), so a
picture is converted to grey (or RGB, per `num_channels`), resized to `size`, and scaled by
1/255. The whole preprocessing is here rather than in a transformers image-processor subclass
because those internals differ between transformers 4.4x and 5.x; this class needs only the
stable `BaseImageProcessor` / `BatchFeature` API, numpy and Pillow.

Single source: zoo/models/_shared/; each image architecture folder holds a byte-identical copy.
"""
import numpy as np
from PIL import Image
from transformers.feature_extraction_utils import BatchFeature
from transformers.image_processing_utils import BaseImageProcessor


class ZooImageProcessor(BaseImageProcessor):
    model_input_names = ["pixel_values"]

    def __init__(self, size=None, num_channels=1, rescale_factor=1 / 255, resample="bilinear", **kwargs):
        super().__init__(**kwargs)
        if isinstance(size, int):
            size = {"height": size, "width": size}
        self.size = dict(size or {"height": 28, "width": 28})
        if num_channels not in (1, 3):
            raise ValueError(f"num_channels must be 1 or 3, got {num_channels!r}")
        self.num_channels = num_channels
        self.rescale_factor = float(rescale_factor)
        if resample not in ("nearest", "bilinear", "bicubic"):
            raise ValueError(f"resample must be nearest, bilinear or bicubic; got {resample!r}")
        self.resample = resample

    @classmethod
    def for_model_config(cls, config: dict) -> "ZooImageProcessor":
        """The processor for a model config (its image_size and num_channels)."""
        return cls(size=int(config["image_size"]), num_channels=int(config.get("num_channels", 1)))

    def _to_pil(self, image) -> Image.Image:
        if isinstance(image, Image.Image):
            return image
        array = np.asarray(image.detach().cpu() if hasattr(image, "detach") else image)
        if array.ndim == 3 and array.shape[0] in (1, 3) and array.shape[-1] not in (1, 3):
            array = array.transpose(1, 2, 0)  # channels-first → channels-last
        if array.ndim == 3 and array.shape[-1] == 1:
            array = array[..., 0]
        if array.dtype != np.uint8:  # floats: [0, 1] like the training data
            array = (np.clip(array.astype(np.float64), 0.0, 1.0) * 255).round().astype(np.uint8)
        return Image.fromarray(array)

    def preprocess(self, images, return_tensors=None, **kwargs) -> BatchFeature:
        single = not isinstance(images, (list, tuple))
        resample = {"nearest": Image.NEAREST, "bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC}[self.resample]
        arrays = []
        for image in [images] if single else images:
            image = self._to_pil(image).convert("L" if self.num_channels == 1 else "RGB")
            size = (self.size["width"], self.size["height"])
            if image.size != size:
                image = image.resize(size, resample)
            array = np.asarray(image, dtype=np.float32) * self.rescale_factor
            arrays.append(array[None] if array.ndim == 2 else array.transpose(2, 0, 1))
        return BatchFeature(data={"pixel_values": np.stack(arrays)}, tensor_type=return_tensors)

    def __call__(self, images, **kwargs) -> BatchFeature:
        return self.preprocess(images, **kwargs)
