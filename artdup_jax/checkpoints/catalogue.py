"""The checkpoints the authors released, by name, with the URLs of the official download scripts.

  XiSHEN0220/ArtMiner      model/download_models.sh           Brueghel / LTLL / Oxford models, ImageNet ResNet-18/34
  XiSHEN0220/RANSAC-Flow   model/pretrained/download_model.sh one model.zip: 5 fine networks, MoCo ResNet-50
                                                               (+ the ADE20K sky-segmentation encoder/decoder,
                                                               not listed: no JAX model uses them)
  XiSHEN0220/SegSwap       model/hard_mining_neg5.pth (in the repository), model/download_model.sh (MoCo-v2)
  torchvision              the ImageNet ResNets the official code loads with ``pretrained=True``

Dropbox links are given with ``dl=1`` (the scripts' ``dl=0`` answers with a preview page in a browser).
``sha256`` is known in advance for none of them; torchvision's file names carry the first 8 hex digits of
it (``sha256_prefix``, torch.hub's convention). For the others the cache records the hash of the first
complete fetch and checks every later fetch against it (``checkpoints.cache``).

``ARTDUP_WEIGHTS_MIRROR`` (or ``mirror=``) replaces every URL by ``MIRROR/<remote file name>``: an
institutional mirror, or a loopback server in tests.
"""

from __future__ import annotations

import dataclasses
import os
import urllib.parse

MIRROR_ENV = "ARTDUP_WEIGHTS_MIRROR"
METHODS = ("artminer", "ransac_flow", "segswap")

_TORCHVISION = "https://download.pytorch.org/models"
_RANSAC_FLOW_ZIP = "https://www.dropbox.com/s/uegv8aqq5sj3542/model.zip?dl=1"


@dataclasses.dataclass(frozen=True)
class ReleasedWeights:
    """One released checkpoint. With ``member``, ``url`` is a zip archive (``remote_name``) holding it."""

    name: str  # what ``--weights NAME`` and ``artdup weights fetch NAME`` take
    method: str  # one of METHODS
    family: str  # the conversion family (``artdup_jax.checkpoints.conversion``)
    url: str
    file_name: str  # the checkpoint's file name in the cache (and in the official layout)
    description: str
    source: str  # where the URL comes from
    remote_name: str = ""  # the file the URL serves (default: file_name); an archive's name with ``member``
    member: str | None = None  # the checkpoint's path inside the archive
    approx_bytes: int | None = None  # for display only, never checked
    sha256: str | None = None
    sha256_prefix: str | None = None

    @property
    def served_name(self) -> str:
        return self.remote_name or self.file_name

    def download_url(self, mirror: str | None = None) -> str:
        """``url``, or ``MIRROR/<served_name>`` with a mirror (argument, else ``$ARTDUP_WEIGHTS_MIRROR``)."""
        mirror = mirror if mirror is not None else os.environ.get(MIRROR_ENV) or None
        if mirror:
            return f"{mirror.rstrip('/')}/{urllib.parse.quote(self.served_name)}"
        return self.url


def _torchvision(name: str, method: str, family: str, file: str, approx_mb: int, description: str,
                 source: str) -> ReleasedWeights:
    prefix = file.rsplit("-", 1)[1].split(".")[0]  # resnet18-5c106cde.pth -> 5c106cde
    return ReleasedWeights(name, method, family, f"{_TORCHVISION}/{file}", file, description, source,
                           approx_bytes=approx_mb << 20, sha256_prefix=prefix)


def _dropbox(key: str, file: str) -> str:
    return f"https://www.dropbox.com/s/{key}/{file}?dl=1"


def _ransac_flow(name: str, member: str, family: str, description: str) -> ReleasedWeights:
    return ReleasedWeights(name, "ransac_flow", family, _RANSAC_FLOW_ZIP, member, description,
                           "XiSHEN0220/RANSAC-Flow model/pretrained/download_model.sh", remote_name="model.zip",
                           member=member)


_ARTMINER_SCRIPT = "XiSHEN0220/ArtMiner model/download_models.sh"

RELEASED: dict[str, ReleasedWeights] = {w.name: w for w in (
    _torchvision("artminer-imagenet", "artminer", "artminer", "resnet18-5c106cde.pth", 45,
                 "ImageNet ResNet-18 (torchvision), ArtMiner's 'ImageNet feature' baseline (saved as resnet18.pth)",
                 _ARTMINER_SCRIPT),
    ReleasedWeights("artminer-brueghel", "artminer", "artminer", _dropbox("riyzmksp9qma8hn", "brueghelModel.pth"),
                    "brueghelModel.pth", "ResNet-18 conv4 fine-tuned on Brueghel (one-shot detail detection)",
                    _ARTMINER_SCRIPT),
    ReleasedWeights("artminer-ltll", "artminer", "artminer", _dropbox("cqv60rlvefpt5mi", "ltllModel.pth"),
                    "ltllModel.pth", "ResNet-18 conv4 fine-tuned on LTLL (discovery, place recognition)",
                    _ARTMINER_SCRIPT),
    ReleasedWeights("artminer-oxford", "artminer", "artminer", _dropbox("dxi5hchfawl98qa", "oxfordModel.pth"),
                    "oxfordModel.pth", "ResNet-18 conv4 fine-tuned on Oxford5K (retrieval)", _ARTMINER_SCRIPT),
    _torchvision("artminer-imagenet-resnet34", "artminer", "resnet34", "resnet34-333f7ec4.pth", 83,
                 "ImageNet ResNet-34 (torchvision), downloaded by ArtMiner's script (saved as resnet34.pth)",
                 _ARTMINER_SCRIPT),
    _ransac_flow("ransac-flow-megadepth", "MegaDepth_Theta1_Eta001_Grad1_0.774.pth", "ransac_flow",
                 "fine network trained on MegaDepth with flow-gradient regularisation (the authors' visual results)"),
    _ransac_flow("ransac-flow-megadepth-grad0", "MegaDepth_Theta1_Eta001_Grad0_0.807.pth", "ransac_flow",
                 "fine network trained on MegaDepth, no gradient term (the paper's results without fine-tuning)"),
    _ransac_flow("ransac-flow-megadepth-testft", "MegaDepth_TestFT.pth", "ransac_flow",
                 "fine network fine-tuned on the MegaDepth test set (correspondence benchmark)"),
    _ransac_flow("ransac-flow-robotcar-testft", "RobotCar_TestFT.pth", "ransac_flow",
                 "fine network fine-tuned on the RobotCar test set (correspondence benchmark)"),
    _ransac_flow("ransac-flow-kitti-testft", "KITTI_TestFT.pth", "ransac_flow",
                 "fine network fine-tuned on the KITTI test set (optical-flow benchmark)"),
    _ransac_flow("ransac-flow-moco-resnet50", "resnet50_moco.pth", "moco_resnet50",
                 "MoCo ResNet-50 (bl0/moco 'model' dict), the coarse-alignment features"),
    _torchvision("ransac-flow-imagenet-resnet50", "ransac_flow", "resnet50", "resnet50-19c8e357.pth", 98,
                 "ImageNet ResNet-50 (torchvision), RANSAC-Flow's alternative coarse features (imageNet=True)",
                 "torchvision models.resnet50(pretrained=True), as loaded by RANSAC-Flow"),
    ReleasedWeights("segswap-hard-mining-neg5", "segswap", "segswap",
                    "https://github.com/XiSHEN0220/SegSwap/raw/main/model/hard_mining_neg5.pth",
                    "hard_mining_neg5.pth", "MoCo-v2 ResNet-50 conv4 + cross-transformer after hard-negative "
                    "mining (every evaluation of the paper)", "XiSHEN0220/SegSwap model/hard_mining_neg5.pth"),
    ReleasedWeights("segswap-moco-v2-800ep", "segswap", "moco_resnet50",
                    "https://dl.fbaipublicfiles.com/moco/moco_checkpoints/moco_v2_800ep/moco_v2_800ep_pretrain.pth.tar",
                    "moco_v2_800ep_pretrain.pth.tar", "MoCo-v2 ResNet-50 (800 epochs), SegSwap's backbone before "
                    "training", "XiSHEN0220/SegSwap model/download_model.sh"),
)}


class UnknownWeightsError(ValueError):
    """A name that is in no catalogue entry. One line."""


def get_released(name: str) -> ReleasedWeights:
    try:
        return RELEASED[name]
    except KeyError:
        raise UnknownWeightsError(f"unknown weights {name!r}; released: {', '.join(sorted(RELEASED))} "
                                  "('artdup weights list')") from None


def released_for(family: str | tuple[str, ...]) -> list[str]:
    """Names of the released weights of ``family`` (or of any of several), for error messages."""
    families = (family,) if isinstance(family, str) else tuple(family)
    return [name for name, weights in RELEASED.items() if weights.family in families]
